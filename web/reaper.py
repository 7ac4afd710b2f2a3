"""Lost workers: fail jobs whose worker died mid-run, from the web side, within about 25 seconds.

RQ fails such a job only when some worker runs `StartedJobRegistry.cleanup()`, at start and then
every 10 minutes, so with no other worker the job would say "started" for that long. Each web
process runs one background thread (a greenlet under gunicorn's gevent worker) that, about once a
second, takes a short Redis lock and, if it got it, cleans every queue's started registry.

The cleanup looks LOOKAHEAD_S (the `LOST_JOB_LOOKAHEAD_S` setting) into the future. A running job's
registry deadline is its last heartbeat + min(job monitoring interval, remaining timeout) + 60 s, so a
live job's deadline is always about 60 s ahead (measured: never under 60 s); one whose heartbeat is
~25 s stale (workers at `--job-monitoring-interval 5`, the default lookahead of 40 s) falls inside
the lookahead and is failed with AbandonedJobError, which the contract reports as "worker lost: ...".
"Now" is Redis's clock (TIME), not this host's: a web host whose clock runs ahead would otherwise
fail live jobs. The deadline is written with the worker host's clock, so worker hosts need clocks
within a few seconds of Redis's (NTP).
Without a web process running nothing reaps early: the next worker to start (or a worker's
maintenance, every `--maintenance-interval` seconds) does it.

After a Redis outage the check holds its judgement for OUTAGE_HOLD_S (`OutageHold`): no worker
could write a heartbeat while Redis was away, and a worker that rode the outage out
(`jobs.outage`) writes its next one within a heartbeat interval of Redis answering again. The
check notices an outage itself: it could not reach Redis, or Redis is another server than the
last time it asked (its `run_id` changed: a restart, or a failover to another primary), or Redis
started less than OUTAGE_HOLD_S ago. A job whose worker died during the outage is still failed,
OUTAGE_HOLD_S later at most.
"""

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable

from flask import Flask
from redis import Redis
from redis.exceptions import RedisError, ResponseError
from rq import Queue
from rq.registry import StartedJobRegistry

from jobs.keys import lost_job_lock_key
from web.config import DEFAULTS

log = logging.getLogger(__name__)

# How far ahead of now cleanup() looks by default; a live job's deadline stays >= 60 s ahead (see above).
LOOKAHEAD_S: float = DEFAULTS["LOST_JOB_LOOKAHEAD_S"]
# What RQ adds to a running job's deadline (rq.worker.base, get_heartbeat_ttl); lookaheads stay under it.
RQ_DEADLINE_MARGIN_S = 60.0

# How long the check waits after an outage before it judges jobs again: the workers' heartbeat
# interval (the Procfile's --job-monitoring-interval 5) and as much again as margin.
OUTAGE_HOLD_S = 10.0

# One thread per process; a fork (gunicorn --preload) gets none, so it is keyed by pid.
_started: dict[int, threading.Thread] = {}
_start_lock = threading.Lock()


def reap_lost_jobs(connection: Redis, now: float | None = None, lookahead_s: float = LOOKAHEAD_S) -> None:
    """Fail every started job, on every queue, whose worker stopped sending heartbeats.

    Args:
        connection: the Redis client; callbacks of failed jobs run with it.
        now: the Unix time to judge deadlines by; by default Redis's clock (tests pass their own).
        lookahead_s: how far past `now` a deadline may lie and still count as passed.
    """
    cutoff = (redis_time(connection) if now is None else now) + lookahead_s
    for queue in Queue.all(connection=connection):
        StartedJobRegistry(queue.name, connection=connection).cleanup(timestamp=cutoff)


def redis_time(connection: Redis) -> float:
    """Redis's clock, as Unix time: the one clock every host and process shares."""
    seconds, microseconds = connection.time()
    return seconds + microseconds / 1_000_000


class OutageHold:
    """Whether the check must wait after a Redis outage (module docstring); one per process."""

    def __init__(self, hold_s: float = OUTAGE_HOLD_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.hold_s = hold_s
        self._clock = clock
        self._run_id: str | None = None
        self._unreachable = False
        self._until = float("-inf")

    def unreachable(self) -> None:
        """Note that Redis could not be reached: the hold starts once it answers again."""
        self._unreachable = True

    def holds(self, connection: Redis) -> bool:
        """Whether to wait before judging; asks Redis who it is (one INFO)."""
        try:
            info = connection.info("server")
        except ResponseError:  # INFO renamed or refused (a hosted Redis, fakeredis): unreachability only
            info = {}
        run_id, uptime_s = info.get("run_id"), float(info.get("uptime_in_seconds", float("inf")))
        now = self._clock()
        if self._unreachable or None not in (run_id, self._run_id) and run_id != self._run_id:
            log.warning(
                "lost-job check: Redis was away or changed; judging jobs again in %.0f s", self.hold_s
            )
            self._until = now + self.hold_s
        self._unreachable, self._run_id = False, run_id or self._run_id
        return now < self._until or uptime_s < self.hold_s


def check_once(
    connection: Redis,
    interval_s: float,
    token: str,
    lookahead_s: float = LOOKAHEAD_S,
    hold: OutageHold | None = None,
) -> bool:
    """Reap lost jobs if no other process did within the last interval, and no outage holds the
    check (`OutageHold`); returns whether we did."""
    if hold is not None and hold.holds(connection):
        return False
    if not connection.set(lost_job_lock_key(), token, nx=True, px=max(1, int(interval_s * 1000 * 0.9))):
        return False
    reap_lost_jobs(connection, lookahead_s=lookahead_s)
    return True


def run(
    connection: Redis, interval_s: float, stop: threading.Event, lookahead_s: float = LOOKAHEAD_S
) -> None:
    """The background loop: check every `interval_s`, logging Redis errors and going on."""
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    failing = False
    hold = OutageHold()
    while not stop.wait(interval_s):
        try:
            check_once(connection, interval_s, token, lookahead_s, hold)
        except RedisError as exc:
            hold.unreachable()
            if not failing:
                log.warning("lost-job check failed (will retry every %.0f s): %s", interval_s, exc)
            failing = True
        except Exception:
            log.exception("lost-job check crashed; retrying")
        else:
            if failing:
                log.info("lost-job check works again")
            failing = False


def ensure_started(
    connection: Redis, interval_s: float, lookahead_s: float = LOOKAHEAD_S
) -> threading.Thread | None:
    """Start this process's lost-job thread unless it runs already."""
    if interval_s <= 0:
        return None
    with _start_lock:
        thread = _started.get(os.getpid())
        if thread is None or not thread.is_alive():
            thread = threading.Thread(
                target=run,
                args=(connection, interval_s, threading.Event(), lookahead_s),
                name="lost-job-check",
                daemon=True,
            )
            thread.start()
            _started[os.getpid()] = thread
            log.info(
                "lost-job check running every %.1f s, looking %.0f s ahead, in process %d",
                interval_s,
                lookahead_s,
                os.getpid(),
            )
        return thread


def init_app(app: Flask) -> None:
    """Start the lost-job thread with the app's Redis client, and again after a fork.

    `create_app` calls it only when BACKGROUND_THREADS is on.

    Raises:
        RuntimeError: LOST_JOB_LOOKAHEAD_S is not under RQ's 60 s margin (live jobs would be failed).
    """
    interval_s = float(app.config.get("LOST_JOB_CHECK_INTERVAL_S", 0))
    if interval_s <= 0:
        return
    lookahead_s = float(app.config.get("LOST_JOB_LOOKAHEAD_S", LOOKAHEAD_S))
    if not 0 <= lookahead_s < RQ_DEADLINE_MARGIN_S:
        raise RuntimeError(
            f"LOST_JOB_LOOKAHEAD_S must be at least 0 and under {RQ_DEADLINE_MARGIN_S:.0f} "
            f"(a running job's deadline is only that far ahead), not {lookahead_s:g}"
        )
    connection = app.extensions["rq"]["redis"]
    ensure_started(connection, interval_s, lookahead_s)

    @app.before_request
    def restart_after_fork() -> None:
        if os.getpid() not in _started:
            ensure_started(connection, interval_s, lookahead_s)
