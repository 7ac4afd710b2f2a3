"""Progress for job authors: one call to save and publish how far a job has come.

The only writer of `job.meta`. Each saved update is stored under meta["progress"] (so
`/status/<id>` reads it from Redis) and published on the job's channel (so open event
streams get it at once). The terminal callbacks publish the final payload, built from their
own arguments, because RQ has not yet stored FINISHED or FAILED when they run.

Stopping between steps: `request_stop(connection, job_id)` (the cancel route calls it) sets a
key of its own, because `save_meta()` writes the whole meta and would erase a flag kept there.
The job sees it through `report()`, which raises `StopRequested` after a saved update, or by
asking `stop_requested()` itself. A stopped job ends FAILURE with the status "stopped" and is
never retried.
"""

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job, JobStatus

from jobs.contract import exception_message, isoformat, to_payload
from jobs.durations import record_duration

log = logging.getLogger(__name__)
# Job end lines go to a child of rq's worker logger: the stock `rq worker` configures only that
# one, so a line logged under our own name would be dropped in the work horse.
job_log = logging.getLogger(f"rq.worker.{__name__}")

KEY_PREFIX = "rq-progress"
DEFAULT_MAX_SAVES_PER_S = 10.0
# A stop request outlives any job timeout we register, then cleans itself up.
STOP_REQUEST_TTL_S = 24 * 60 * 60


class StopRequested(Exception):
    """Raised in a job that was asked to stop; RQ records it as a failure with the status "stopped"."""

    def __init__(self, message: str = "stopped") -> None:
        super().__init__(message)


def channel_for(job_id: str) -> str:
    """The pub/sub channel that carries one job's payloads."""
    return f"{KEY_PREFIX}:events:{job_id}"


def stop_key(job_id: str) -> str:
    """The Redis key that holds a request to stop one job."""
    return f"{KEY_PREFIX}:stop:{job_id}"


def request_stop(connection: Redis, job_id: str) -> None:
    """Ask a job to stop at its next saved `report()` (or its next `stop_requested()` check).

    Cooperative: a job that never reports runs on; the cancel route pairs this with RQ's
    `send_stop_job_command` for those.
    """
    connection.set(stop_key(job_id), "1", ex=STOP_REQUEST_TTL_S)


def stop_requested(job: Job | None = None) -> bool:
    """Whether the current job (or `job`) was asked to stop; False outside a job. One Redis read."""
    job = job or get_current_job()
    return job is not None and bool(job.connection.exists(stop_key(job.id)))


def initial_meta(retry_max: int | None = None) -> dict[str, Any]:
    """The meta a job is enqueued with: RQ does not store a retry maximum, so we keep it."""
    return {"retry": {"attempt": 0, "max": retry_max}} if retry_max else {}


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


# One entry per job running in this process; a forked work horse holds just one.
_throttles: dict[str, _Throttle] = {}


def report(
    current: int | float,
    total: int | float,
    status: str = "",
    *,
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
        clock: seconds from a monotonic clock; tests pass their own.

    Returns:
        True when this update was saved now, False when it was deferred or there is no job.

    Raises:
        StopRequested: the job was asked to stop (`request_stop`); let it propagate.
    """
    job = get_current_job()
    if job is None:
        return False
    progress = {"current": current, "total": total, "status": status}
    throttle = _throttles.setdefault(job.id, _Throttle())
    now = clock()
    rate = max_saves_per_s()
    if current < total and rate > 0 and now - throttle.last_saved_at < 1.0 / rate:
        throttle.pending = progress
        return False
    throttle.last_saved_at = now
    throttle.pending = None
    if _save(job, progress):
        log.info("job %s stops on request after step %s of %s", job.id, current, total)
        raise StopRequested()
    return True


def flush(job: Job) -> None:
    """Save the update `report` deferred for this job, if any, and forget the job."""
    throttle = _throttles.pop(job.id, None)
    if throttle is not None and throttle.pending is not None:
        _save(job, throttle.pending)


def publish(connection: Redis, payload: dict[str, Any]) -> int:
    """Publish a contract payload on its job's channel; returns how many subscribers got it."""
    return connection.publish(channel_for(payload["id"]), _encode(payload))


def _encode(payload: dict[str, Any]) -> str:
    return json.dumps(payload, default=str)


def _save(job: Job, progress: dict[str, Any]) -> bool:
    """Save progress with `job.save_meta()`, publish it, and say whether a stop was requested."""
    progress["updated_at"] = isoformat(datetime.now(UTC))
    job.meta["progress"] = progress
    job.save_meta()
    # The PUBLISH and the stop-request check share one round trip; Redis runs them after the
    # save, so a subscriber that re-reads the job sees the saved meta.
    pipe = job.connection.pipeline(transaction=False)
    pipe.publish(channel_for(job.id), _encode(to_payload(job.id, JobStatus.STARTED, job.meta)))
    pipe.exists(stop_key(job.id))
    return bool(pipe.execute()[1])


def on_success(job: Job, connection: Redis, result: Any) -> None:
    """RQ success callback: save the last deferred update and publish SUCCESS."""
    flush(job)
    payload = to_payload(job.id, JobStatus.FINISHED, job.meta, result=result)
    publish(connection, payload)
    log_end(job, connection, "success", payload["status"])


def on_failure(job: Job, connection: Redis, exc_type: type, exc_value: BaseException, traceback: Any) -> None:
    """RQ failure callback, run after every failed attempt: keep the message, publish what comes next.

    RQ calls it before deciding on a retry, so with retries left it publishes the PENDING
    "retrying n/max in s" payload rather than a FAILURE that is not final.
    """
    flush(job)
    job.meta["error"] = exception_message(exc_value)
    if isinstance(exc_value, StopRequested):
        # RQ reads this same object to decide on a retry: a stop is not a failure to retry.
        job.retries_left = 0
    if job.retries_left:
        interval_s = job.get_retry_interval()
        retry = job.meta.get("retry") or {}
        maximum = retry.get("max") or job.retries_left
        job.meta["retry"] = {"attempt": maximum - job.retries_left + 1, "max": maximum}
        job.save_meta()
        eta = datetime.now(UTC) + timedelta(seconds=interval_s) if interval_s else None
        status = JobStatus.SCHEDULED if interval_s else JobStatus.QUEUED
        log.info("job %s failed (%s); retry %s", job.id, job.meta["error"], job.meta["retry"])
        publish(connection, to_payload(job.id, status, job.meta, eta=eta))
        return
    job.save_meta()
    publish(connection, to_payload(job.id, JobStatus.FAILED, job.meta))
    log_end(
        job, connection, "lost" if isinstance(exc_value, AbandonedJobError) else "failure", job.meta["error"]
    )


def on_stopped(job: Job, connection: Redis) -> None:
    """RQ stopped callback: publish FAILURE with the status "stopped"."""
    _throttles.pop(job.id, None)
    payload = to_payload(job.id, JobStatus.STOPPED, job.meta)
    publish(connection, payload)
    log_end(job, connection, "stopped", payload["status"])


def log_end(job: Job, connection: Redis, outcome: str, status: str) -> None:
    """Log the job's end line (id, function, outcome, run time) and count its run time for /metrics.

    Runs in the work horse, or in the web process for a job whose worker was lost.
    """
    seconds = run_seconds(job)
    job_log.info(
        "job %s ended: %s %s in %.3f s on %s (%s)",
        job.id,
        job.func_name,
        outcome.upper(),
        seconds,
        job.origin,
        status,
    )
    record_duration(connection, job.origin, outcome, seconds)


def run_seconds(job: Job, now: datetime | None = None) -> float:
    """Seconds since the job started (0 when RQ has no start time for it)."""
    started = job.started_at
    if started is None:
        return 0.0
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return max(0.0, ((now or datetime.now(UTC)) - started).total_seconds())
