"""RQ's lifecycle callbacks: final payloads, retry bookkeeping, the end-of-job log line and metrics.

Every enqueue passes `CALLBACKS` (by dotted path, so the web process never imports job code).
Each callback publishes a payload built from its own arguments, because RQ has not yet stored
FINISHED or FAILED when it runs.
"""

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from rq import Callback
from rq.exceptions import AbandonedJobError
from rq.job import Job, JobStatus

from jobs.channel import publish
from jobs.contract import exception_message, to_payload
from jobs.control import OWNER_META_KEY, StopRequested
from jobs.durations import record_duration
from jobs.progress import discard, flush

log = logging.getLogger(__name__)
# Job end lines go to a child of rq's worker logger: the stock `rq worker` configures only that
# one, so a line logged under our own name would be dropped in the work horse.
job_log = logging.getLogger(f"rq.worker.{__name__}")

# The keyword arguments of Queue.enqueue that attach our callbacks; every enqueue uses these.
CALLBACKS = {
    "on_success": Callback(f"{__name__}.on_success"),
    "on_failure": Callback(f"{__name__}.on_failure"),
    "on_stopped": Callback(f"{__name__}.on_stopped"),
}


def initial_meta(retry_max: int | None = None, owner: str | None = None) -> dict[str, Any]:
    """The meta a job is enqueued with: who started it, and the retry maximum (RQ does not store it)."""
    meta: dict[str, Any] = {"retry": {"attempt": 0, "max": retry_max}} if retry_max else {}
    if owner is not None:
        meta[OWNER_META_KEY] = owner
    return meta


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
        publish(connection, _schedule_retry(job))
        return
    job.save_meta()
    publish(connection, to_payload(job.id, JobStatus.FAILED, job.meta))
    log_end(
        job, connection, "lost" if isinstance(exc_value, AbandonedJobError) else "failure", job.meta["error"]
    )


def _schedule_retry(job: Job) -> dict[str, Any]:
    """Count the failed attempt in meta["retry"]; returns the PENDING payload of the wait for the next."""
    interval_s = job.get_retry_interval()
    retry = job.meta.get("retry") or {}
    maximum = retry.get("max") or job.retries_left
    job.meta["retry"] = {"attempt": maximum - job.retries_left + 1, "max": maximum}
    job.save_meta()
    eta = datetime.now(UTC) + timedelta(seconds=interval_s) if interval_s else None
    status = JobStatus.SCHEDULED if interval_s else JobStatus.QUEUED
    log.info("job %s failed (%s); retry %s", job.id, job.meta["error"], job.meta["retry"])
    return to_payload(job.id, status, job.meta, eta=eta)


def on_stopped(job: Job, connection: Redis) -> None:
    """RQ stopped callback: publish FAILURE with the status "stopped"."""
    discard(job)
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
