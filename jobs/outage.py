"""Riding out a Redis outage in the worker: every command waits for Redis up to `REDIS_OUTAGE_GRACE_S`.

RQ's worker exits when a heartbeat fails while it runs a job, and its job is then reported
"worker lost". Here every connection of the worker (its parent, its work horse, its pub/sub
thread, its scheduler) retries a command that meets a dropped or refused connection every
`RETRY_EVERY_S`, for as long as the outage (counted once per process, from the first failed
command) is under the grace: idle, between jobs or mid-job, a worker reconnects by itself, on
one server restarted or on the primary the sentinels name after a failover. Past the grace a
command raises as before; the worker logs why and exits (its supervisor restarts it; its job
is reported "worker lost").

What a job sees (`jobs.progress`, `jobs.joblog`): a progress save or a log write made during
an outage does not wait (`fail_fast`): it is kept, the newest update and the lines (capped), and
written by the next save once Redis answers. The job's end waits for Redis, and is written once:
`end_once` runs the end's commands only while the job is still this execution's (not deleted,
failed as lost or taken again meanwhile; one canceled while it ran ends as under RQ), and a
resend of the same end by redis-py
(after a reply lost to a dropped connection) finds its marker and changes nothing.
"""

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis import Redis
from redis.backoff import ConstantBackoff
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from jobs.keys import ended_key

# Child of rq's worker logger: the stock `rq worker` configures only that one (jobs.callbacks).
log = logging.getLogger(f"rq.worker.{__name__}")

DEFAULT_GRACE_S = 30.0
# How often a command is tried again while Redis is away (seconds).
RETRY_EVERY_S = 0.5
# How long the marker of a written end is kept: longer than any resend of it (seconds).
ENDED_MARKER_TTL_S = 600
# `end_once`'s reply when the job is no longer this execution's to end.
NOT_OURS = -1
OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)


def grace_s() -> float:
    """How long a worker rides out a Redis outage (env REDIS_OUTAGE_GRACE_S, seconds; 0: not at all)."""
    return float(os.environ.get("REDIS_OUTAGE_GRACE_S", DEFAULT_GRACE_S))


class _Clock:
    """This process's view of the outage: since when Redis has not answered (None: it answers)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.since: float | None = None
        self.gave_up = False

    def failed(self, error: Exception) -> float:
        """Note a failed command; returns the outage's age in seconds."""
        with self.lock:
            now = time.monotonic()
            if self.since is None:
                self.since, self.gave_up = now, False
                log.warning(
                    "Redis unreachable (%s): riding it out for up to %g s (REDIS_OUTAGE_GRACE_S)",
                    error,
                    grace_s(),
                )
            return now - self.since

    def answered(self) -> None:
        """Note a command that went through: an outage, if any, is over."""
        if self.since is None:
            return
        with self.lock:
            if self.since is not None:
                log.warning("Redis answers again after %.1f s", time.monotonic() - self.since)
                self.since = None

    def give_up(self, age_s: float) -> None:
        with self.lock:
            if not self.gave_up:
                self.gave_up = True
                log.error(
                    "Redis unreachable for %.0f s, past REDIS_OUTAGE_GRACE_S=%g: giving up "
                    "(a busy worker exits now, and its running job will be reported worker lost)",
                    age_s,
                    grace_s(),
                )


clock = _Clock()
_local = threading.local()


class GraceRetry(Retry):
    """redis-py's retry policy for the worker's connections: retry while the outage is under the grace.

    Every connection gets a copy (redis-py deep-copies it); the outage clock is the process's.
    """

    def __init__(self) -> None:
        super().__init__(ConstantBackoff(RETRY_EVERY_S), -1, OUTAGE_ERRORS)

    def __deepcopy__(self, memo: dict) -> "GraceRetry":
        return GraceRetry()

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, GraceRetry)

    __hash__ = Retry.__hash__

    def call_with_retry(
        self,
        do: Callable[[], Any],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> Any:
        failures = 0
        while True:
            try:
                result = do()
            except OUTAGE_ERRORS as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                fail(error, failures) if with_failure_count else fail(error)
                if getattr(_local, "fail_fast", False):
                    raise
                age_s = clock.failed(error)
                if age_s >= grace_s():
                    clock.give_up(age_s)
                    raise
                time.sleep(RETRY_EVERY_S)
            else:
                clock.answered()
                return result


@contextmanager
def fail_fast() -> Iterator[None]:
    """Inside, a command on this thread fails at once when Redis is away (no riding out)."""
    before = getattr(_local, "fail_fast", False)
    _local.fail_fast = True
    try:
        yield
    finally:
        _local.fail_fast = before


def in_outage() -> bool:
    """Whether this process's last command found Redis away (a save then keeps its update)."""
    return clock.since is not None


def ride_out(connection: Redis) -> Redis:
    """Give a worker's client (and every connection its pool has made or will make) `GraceRetry`.

    RQ's CLI builds the client (`--url`, or `-c` settings) before the worker class sees it, so
    the policy is put on the pool's connection settings, as RQ puts its socket timeout there.
    """
    if grace_s() <= 0:
        return connection
    pool = connection.connection_pool
    pool.connection_kwargs["retry"] = GraceRetry()
    for name in ("_available_connections", "_in_use_connections", "_connections"):
        made = getattr(pool, name, None) or ()
        for made_connection in list(made):
            if made_connection is not None:
                made_connection.retry = GraceRetry()
    return connection


class RidesOutages:
    """Mixin for `rq.Worker` (before it): the worker's connection rides out outages (`ride_out`),
    and its pub/sub thread waits for Redis whatever the error (RQ's lets a timeout end it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ride_out(self.connection)

    def _pubsub_exception_handler(self, exc: Exception, pubsub: Any, pubsub_thread: Any) -> None:
        """Keep the command channel's thread alive through an outage; it resubscribes on reconnect."""
        if not isinstance(exc, OUTAGE_ERRORS):
            super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)
            return
        self.log.warning("Worker %s: command channel lost (%s); reconnecting", self.name, exc)
        time.sleep(RETRY_EVERY_S)


# KEYS: the job's hash, the execution's hash, the end's marker (`jobs.keys.ended_key`), then the
# guard's. ARGV: the marker's TTL, then the end's commands (`jobs.worker.bookkeeping._RUN_FROM`). Returns
# 1 when the end is written now or was before (a resend finds the marker and changes nothing),
# NOT_OURS without writing when the job is no longer this execution's (deleted, failed as lost,
# taken again), or what the guard returns without writing. A job canceled while it ran is ended
# as RQ's worker ends it: finished (with dependents, by RQ's own end, which holds them back).
_END_ONCE_HEAD = (
    b"""
if redis.call('EXISTS', KEYS[3]) == 1 then return 1 end
local status = redis.call('HGET', KEYS[1], 'status')
if (status ~= 'started' and status ~= 'canceled') or redis.call('EXISTS', KEYS[2]) == 0 then
  return %d
end
"""
    % NOT_OURS
)
_END_ONCE_TAIL = b"""
redis.call('SET', KEYS[3], '1', 'EX', ARGV[1])
return 1
"""


def end_once_script(run_from: bytes, guard: bytes = b"") -> Script:
    """The end script around the loop that runs the commands it is given (`jobs.worker.bookkeeping`), with
    a `guard` that may return before anything is written (its keys from KEYS[4])."""
    return Script(None, _END_ONCE_HEAD + guard + b"local first = 2\n" + run_from + _END_ONCE_TAIL)


def end_once_input(
    job_key: Any, execution_key: str, execution_id: str, end: list[Any], guard_keys: Sequence[Any] = ()
) -> tuple[list, list]:
    """The keys and arguments of the end script for one execution's end commands."""
    return [job_key, execution_key, ended_key(execution_id), *guard_keys], [ENDED_MARKER_TTL_S, *end]
