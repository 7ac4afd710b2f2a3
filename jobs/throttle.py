"""How `report()`'s updates reach Redis: at most a few saves a second, none dropped, one round trip each.

A job's update is saved at once unless the last save was less than 1 / `max_saves_per_s()` ago;
then it waits, and the next update, `flush` (the lifecycle callbacks call it when the job ends)
or `discard` (a stopped job) deals with it. A save is one round trip: RQ's own `job.save_meta()`,
the PUBLISH of the payload on the job's channel, the stop-request check and the step's log lines.
`jobs.progress` (for job code) and `jobs.callbacks` (at a job's end) both call here. A save
that finds Redis away does not wait for it nor fail the job: the update is kept as a deferred one,
its lines too (`jobs.outage`); `flush` waits for Redis.
"""

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.client import Pipeline
from rq.job import Job, JobStatus

from jobs import joblog, outage
from jobs.channel import encode, publish_line_moved
from jobs.contract import isoformat, to_payload
from jobs.durations import usual_s
from jobs.estimate import fold
from jobs.keys import channel_for, history_key, stop_key

DEFAULT_MAX_SAVES_PER_S = 10.0


def max_saves_per_s() -> float:
    """How many progress saves a job may make each second (env PROGRESS_MAX_SAVES_PER_S)."""
    return float(os.environ.get("PROGRESS_MAX_SAVES_PER_S", DEFAULT_MAX_SAVES_PER_S))


@dataclass
class _Throttle:
    last_saved_at: float = -math.inf
    pending: dict[str, Any] | None = None
    pending_at: float = 0.0
    # Whether this attempt has saved yet: its first save starts the rate over (`jobs.estimate`).
    saved: bool = False
    # The job name's history of runs (`jobs.durations`), read with the first save; None until then.
    history: list[float] | None = None


# One entry per job running in this process; a forked work horse holds just one.
_throttles: dict[str, _Throttle] = {}
# The history each job name had at its last job's first save in this process: a warm work horse
# runs many jobs, so a job's first save can already say how long it usually takes.
_last_histories: dict[str, list[float]] = {}


def offer(job: Job, progress: dict[str, Any], lines: list[dict], now: float) -> bool | None:
    """Save `progress` now, or keep it for later when the job saved less than an interval ago.

    Args:
        job: the running job.
        progress: current, total and status, as `report()` got them.
        lines: the step's log lines, written with the save (or kept with the deferred update).
        now: seconds on the clock `report()` was given.

    Returns:
        None when deferred (or Redis is away); else whether a stop was requested.
    """
    throttle = _throttles.setdefault(job.id, _Throttle())
    rate = max_saves_per_s()
    if progress["current"] < progress["total"] and rate > 0 and now - throttle.last_saved_at < 1.0 / rate:
        throttle.pending, throttle.pending_at = progress, now
        for line in lines:
            joblog.keep(job.id, line)
        return None
    throttle.last_saved_at = now
    throttle.pending = None
    try:
        with outage.fail_fast():
            return _save(job, throttle, progress, now, lines)
    except outage.OUTAGE_ERRORS:
        # Redis is away: the job goes on; this update, the newest, waits for the next save.
        throttle.pending, throttle.pending_at = progress, now
        return None


def flush(job: Job) -> None:
    """Save the update `report` deferred for this job, if any, with its log lines; forget the job."""
    throttle = _throttles.pop(job.id, None)
    if throttle is not None and throttle.pending is not None:
        _save(job, throttle, throttle.pending, throttle.pending_at)
    else:
        joblog.flush(job)


def discard(job: Job) -> None:
    """Forget the job's deferred update without saving it (the job was stopped); its lines are written."""
    _throttles.pop(job.id, None)
    joblog.flush(job)


def _save(
    job: Job, throttle: _Throttle, progress: dict[str, Any], at_s: float, lines: list[dict] | None = None
) -> bool:
    """Save progress with `job.save_meta()`, publish it with any log lines, and say whether a stop
    was requested. `at_s` is when it was reported, on the clock `report` was given."""
    earlier = (job.meta.get("progress") or {}).get("rate") if throttle.saved else None
    throttle.saved = True
    progress["rate"] = fold(earlier, progress["current"], at_s)
    progress["updated_at"] = isoformat(datetime.now(UTC))
    job.meta["progress"] = progress
    known = throttle.history if throttle.history is not None else _last_histories.get(job.description or "")
    payload = to_payload(job.id, JobStatus.STARTED, job.meta, **_usual(job, known))
    with job.connection.pipeline(transaction=False) as pipe:
        # One round trip: RQ's own save_meta() queued on the pipeline, then the PUBLISH and the
        # stop-request check, so a subscriber that re-reads the job sees the saved meta.
        with connection_of(job, pipe):
            job.save_meta()
        pipe.publish(channel_for(job.id), encode(payload))
        stop_check = len(pipe)
        pipe.exists(stop_key(job.id))
        if throttle.history is None:
            pipe.lrange(history_key(job.description or ""), 0, -1)
            # The attempt's first save: the job has started, so the jobs behind it moved up.
            publish_line_moved(pipe, job.origin)
        queued = joblog.append(pipe, job, lines or [])
        try:
            replies = pipe.execute()
        except outage.OUTAGE_ERRORS:
            joblog.keep_back(job.id, queued)
            raise
        if throttle.history is None:
            throttle.history = [float(value) for value in replies[stop_check + 1]]
            if throttle.history:  # an empty one says nothing a later job could not read better
                _last_histories[job.description or ""] = throttle.history
        return bool(replies[stop_check])


def _usual(job: Job, history: list[float] | None) -> dict[str, Any]:
    """`to_payload`'s usual_s and elapsed_s for the job; nothing before its history was read (its
    first save reads it, in the same round trip: that save's payload has no "usual_s" unless this
    process read its name's history for an earlier job)."""
    if history is None:
        return {}
    elapsed_s = (
        (datetime.now(UTC) - job.started_at.replace(tzinfo=UTC)).total_seconds() if job.started_at else None
    )
    return {"usual_s": usual_s(history, job.meta.get("size")), "elapsed_s": elapsed_s}


@contextmanager
def connection_of(job: Job, pipe: Pipeline) -> Iterator[None]:
    """Inside, `job.connection` is `pipe`: RQ's own writes of the job (`job.save_meta()`) are queued
    on the pipeline instead of sent, and so cost no round trip of their own."""
    connection, job.connection = job.connection, pipe
    try:
        yield
    finally:
        job.connection = connection
