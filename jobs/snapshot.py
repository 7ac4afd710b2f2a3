"""Read one job's contract payload from Redis: the truth every reader starts from."""

import re
from datetime import datetime
from typing import Any

from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from jobs.contract import isoformat, short_error, to_payload

# RQ's own id alphabet, without the ":" that rq reads as "job id:execution id".
JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")


def fetch_job(job_id: str, connection: Redis) -> Job:
    """Fetch a job by id.

    Raises:
        NoSuchJobError: the id is malformed, unknown, or its job has expired.
    """
    if not JOB_ID_PATTERN.fullmatch(job_id):
        raise NoSuchJobError(f"no such job: {job_id!r}")
    return Job.fetch(job_id, connection=connection)


def snapshot(job_id: str, connection: Redis) -> dict[str, Any]:
    """The contract payload of one job, as Redis holds it now.

    Raises:
        NoSuchJobError: the id is malformed, unknown, or its job has expired.
    """
    return payload_of(fetch_job(job_id, connection))


def payload_of(job: Job) -> dict[str, Any]:
    """The contract payload of a fetched job (reads its result or error when it has ended)."""
    status = job.get_status(refresh=False)
    result_kwargs: dict[str, Any] = {}
    if status == JobStatus.FINISHED:
        result_kwargs["result"] = job.return_value()
    elif status == JobStatus.FAILED:
        latest = job.latest_result()
        result_kwargs["error"] = short_error(latest.exc_string if latest else None)
    elif status == JobStatus.SCHEDULED:
        result_kwargs["eta"] = scheduled_time(job)
    return to_payload(job.id, status, job.meta, updated_at=isoformat(last_change(job)), **result_kwargs)


def last_change(job: Job) -> datetime | None:
    """When the job last changed by RQ's own timestamps: the `updated_at` before any progress save."""
    return job.ended_at or job.started_at or job.enqueued_at or job.created_at


def scheduled_time(job: Job) -> datetime | None:
    """When a scheduled job (delayed, or waiting to retry) is due; None when it is not scheduled."""
    try:
        return ScheduledJobRegistry(job.origin, connection=job.connection).get_scheduled_time(job)
    except NoSuchJobError:
        return None
