"""RQ's lifecycle callbacks: final payloads, retry bookkeeping, the end-of-job log line and metrics.

Every enqueue passes `CALLBACKS` (by dotted path, so the web process never imports job code).
Each callback publishes a payload built from its own arguments, because RQ has not yet stored
FINISHED or FAILED when it runs, and gives the job's log (`jobs.joblog`) the TTL RQ gives the job;
a final one also drops the job's stop request and counts the run time, in the same round trip,
or with the worker's own writes that end the job when the worker lends its pipeline (`joined_to`).
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq import Callback
from rq.defaults import DEFAULT_FAILURE_TTL, DEFAULT_RESULT_TTL
from rq.exceptions import AbandonedJobError
from rq.job import Job, JobStatus

from jobs.channel import publish, publish_line_moved
from jobs.contract import DEFAULT_STALL_AFTER_S, exception_message, to_payload
from jobs.control import OWNER_META_KEY, StopRequested, clear_stop
from jobs.durations import count_duration, record_run
from jobs.joblog import expire_with
from jobs.throttle import discard, flush

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
# The pipeline a worker lends while a callback runs (`joined_to`); None: callbacks send their own.
_joined: ContextVar[Pipeline | None] = ContextVar("joined_end_writes", default=None)


def initial_meta(
    retry_max: int | None = None,
    owner: str | None = None,
    stall_after_s: int | None = None,
    *,
    size: float | None = None,
) -> dict[str, Any]:
    """The meta a job is enqueued with: what RQ does not store but its payload and its routes need.

    Args:
        retry_max: the retry policy's maximum (RQ keeps only the retries left).
        owner: who started it (only they may cancel it over HTTP).
        stall_after_s: seconds without a saved update before the job is reported stalled,
            when not the contract's default.
        size: the job's size in units of work (`jobs.registry.JobSpec.size`), for its name's history.
    """
    meta: dict[str, Any] = {"retry": {"attempt": 0, "max": retry_max}} if retry_max else {}
    if owner is not None:
        meta[OWNER_META_KEY] = owner
    if stall_after_s is not None and stall_after_s != DEFAULT_STALL_AFTER_S:
        meta["stall_after_s"] = stall_after_s
    if size is not None:
        meta["size"] = size
    return meta


def on_success(job: Job, connection: Redis, result: Any) -> None:
    """RQ success callback: save the last deferred update and publish SUCCESS."""
    flush(job)
    payload = to_payload(job.id, JobStatus.FINISHED, job.meta, result=result)
    _end(job, connection, payload, job.get_result_ttl(DEFAULT_RESULT_TTL), "success", payload["status"])


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
    outcome = "lost" if isinstance(exc_value, AbandonedJobError) else "failure"
    payload = to_payload(job.id, JobStatus.FAILED, job.meta)
    _end(job, connection, payload, failure_ttl(job), outcome, job.meta["error"])


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
    _end(job, connection, payload, failure_ttl(job), "stopped", payload["status"])


def failure_ttl(job: Job) -> int:
    """How long RQ keeps this job once it has failed (or was stopped)."""
    return DEFAULT_FAILURE_TTL if job.failure_ttl is None else job.failure_ttl


def _end(job: Job, connection: Redis, payload: dict[str, Any], ttl_s: int, outcome: str, status: str) -> None:
    """A job's end, in one round trip (or with the worker's end writes, see `joined_to`): publish its final
    payload (and that its queue's line moved), give its log the job's TTL, drop its stop request,
    count its run time for /metrics (and, for a success, in its name's history); and log its end
    line (id, function, outcome, run time). Runs in the work horse, or in the web process for a job
    whose worker was lost."""
    seconds = run_seconds(job)
    # The worker's pipeline when it lent one (`joined_to`, a context variable), else our own.
    with _end_writes(connection) as pipe:
        publish(pipe, payload)
        publish_line_moved(pipe, job.origin)
        clear_stop(pipe, payload["id"])
        expire_with(pipe, payload["id"], ttl_s)
        count_duration(pipe, job.origin, outcome, seconds)
        if outcome == "success":
            record_run(pipe, job.description, seconds, job.meta.get("size"))
    job_log.info(
        "job %s ended: %s %s in %.3f s on %s (%s)",
        job.id,
        job.func_name,
        outcome.upper(),
        seconds,
        job.origin,
        status,
    )


@contextmanager
def joined_to(pipeline: Pipeline) -> Iterator[None]:
    """Inside, our callbacks queue their end writes on `pipeline` (the worker's writes ending the job)
    instead of sending them: the worker sends them with the job's own end (`jobs.worker.bookkeeping`)."""
    token = _joined.set(pipeline)
    try:
        yield
    finally:
        _joined.reset(token)


@contextmanager
def _end_writes(connection: Redis) -> Iterator[Pipeline]:
    """The pipeline a job's end writes go on: the worker's lent one, else one sent on leaving."""
    lent = _joined.get()
    if lent is not None:
        yield lent
        return
    with connection.pipeline(transaction=False) as pipe:
        yield pipe
        pipe.execute()


def run_seconds(job: Job, now: datetime | None = None) -> float:
    """Seconds since the job started (0 when RQ has no start time for it)."""
    started = job.started_at
    if started is None:
        return 0.0
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return max(0.0, ((now or datetime.now(UTC)) - started).total_seconds())
