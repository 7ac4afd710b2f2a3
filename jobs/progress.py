"""Progress for job authors: one call to save and publish how far a job has come.

The only writer of `job.meta["progress"]`. Each saved update is stored there (so `/status/<id>`
reads it from Redis) and published on the job's channel (so open event streams get it at
once). Saves are throttled; a deferred update is saved by the next call, by `flush`, or by the
lifecycle callbacks (`jobs.callbacks`) when the job ends. Each save also checks the stop
request of `jobs.control`, and writes the step's log line (`report(..., log=True)`, see
`jobs.joblog`), at no extra round trip.
"""

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rq import get_current_job
from rq.job import Job, JobStatus

from jobs import joblog
from jobs.channel import encode, publish_line_moved
from jobs.contract import isoformat, to_payload
from jobs.control import StopRequested
from jobs.durations import usual_s
from jobs.estimate import fold
from jobs.keys import channel_for, history_key, stop_key

logger = logging.getLogger(__name__)

DEFAULT_MAX_SAVES_PER_S = 10.0


def resume_point() -> int:
    """Steps the current job had saved as done before this attempt (0 outside a job or at first).

    A retried job can skip work an earlier attempt reported as done.
    """
    job = get_current_job()
    if job is None:
        return 0
    return int((job.meta.get("progress") or {}).get("current", 0))


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


def report(
    current: int | float,
    total: int | float,
    status: str = "",
    *,
    log: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Record the current job's progress; do nothing outside a job.

    Saves are coalesced to at most `max_saves_per_s()`; a skipped update is kept and
    saved by the next call, by `flush`, or when the job ends. The update that reaches
    `total` is always saved at once. After each save the stop request is checked, so a
    job learns it was asked to stop within one save interval, at no extra cost per step.

    Args:
        current: steps done so far.
        total: steps in all.
        status: a short sentence for people watching the bar.
        log: also write "step <current> of <total>: <status>" to the job's log; a deferred
            update's line is kept and written with the next write, never dropped.
        clock: seconds from a monotonic clock; tests pass their own.

    Returns:
        True when this update was saved now, False when it was deferred or there is no job.

    Raises:
        StopRequested: the job was asked to stop (`jobs.control.request_stop`); let it propagate.
    """
    job = get_current_job()
    if job is None:
        return False
    progress = {"current": current, "total": total, "status": status}
    lines = [joblog.make_line(f"step {current} of {total}: {status}")] if log else []
    throttle = _throttles.setdefault(job.id, _Throttle())
    now = clock()
    rate = max_saves_per_s()
    if current < total and rate > 0 and now - throttle.last_saved_at < 1.0 / rate:
        throttle.pending, throttle.pending_at = progress, now
        for line in lines:
            joblog.keep(job.id, line)
        return False
    throttle.last_saved_at = now
    throttle.pending = None
    if _save(job, throttle, progress, now, lines):
        logger.info("job %s stops on request after step %s of %s", job.id, current, total)
        raise StopRequested()
    return True


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
        # One round trip: `job.save_meta()` writes through `job.connection`, pointed at the
        # pipeline for that call; the PUBLISH and the stop-request check follow it, so a
        # subscriber that re-reads the job sees the saved meta.
        connection, job.connection = job.connection, pipe
        try:
            job.save_meta()
        finally:
            job.connection = connection
        pipe.publish(channel_for(job.id), encode(payload))
        stop_check = len(pipe)
        pipe.exists(stop_key(job.id))
        if throttle.history is None:
            pipe.lrange(history_key(job.description or ""), 0, -1)
            # The attempt's first save: the job has started, so the jobs behind it moved up.
            publish_line_moved(pipe, job.origin)
        joblog.append(pipe, job, lines or [])
        replies = pipe.execute()
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


def __getattr__(name: str) -> Any:
    # Jobs enqueued before the callbacks moved to jobs.callbacks name them by these dotted paths
    # in Redis (scheduled for up to a day, waiting to retry, or requeued from the dashboard); rq
    # would fail such a job when its callback cannot be imported. Imported late: jobs.callbacks
    # imports this module.
    if name in ("on_success", "on_failure", "on_stopped"):
        from jobs import callbacks

        return getattr(callbacks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
