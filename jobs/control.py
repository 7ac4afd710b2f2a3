"""Stopping jobs: cancel one that waits, stop one that runs, and the cooperative stop protocol.

Cooperative stop: `request_stop(connection, job_id)` sets a key of its own, because
`save_meta()` writes the whole meta and would erase a flag kept there. The job sees it through
`jobs.progress.report()`, which raises `StopRequested` after a saved update, or by asking
`stop_requested()` itself. A stopped job ends FAILURE with the status "stopped" and is never
retried (`jobs.callbacks`). The terminal callbacks drop the request (`clear_stop`), so a job
requeued after it ended (from the dashboard) runs normally.

`job.cancel()` on a running job marks it canceled while it runs on to `finished`, so a started
job gets `send_stop_job_command` instead: its worker kills the work horse, the job ends
`stopped`, and the stopped callback publishes that. A canceled job has no callback, so the
FAILURE payload is published here.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq import get_current_job
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation
from rq.job import Job, JobStatus

from jobs.channel import publish, publish_line_moved
from jobs.contract import PROGRESS, TERMINAL_STATES, is_terminal, state_for
from jobs.keys import stop_key
from jobs.snapshot import fetch_job, snapshot

log = logging.getLogger(__name__)

# A stop request outlives any job timeout we register, then cleans itself up.
STOP_REQUEST_TTL_S = 24 * 60 * 60
# The meta field naming who started a job (set at enqueue; `save_meta()` keeps it, as it keeps all meta).
OWNER_META_KEY = "owner"


class StopRequested(Exception):
    """Raised in a job that was asked to stop; RQ records it as a failure with the status "stopped"."""

    def __init__(self, message: str = "stopped") -> None:
        super().__init__(message)


def request_stop(connection: Redis, job_id: str) -> None:
    """Ask a job to stop at its next saved `report()` (or its next `stop_requested()` check).

    Cooperative: a job that never reports runs on; `cancel_job` pairs this with RQ's
    `send_stop_job_command` for those.
    """
    connection.set(stop_key(job_id), "1", ex=STOP_REQUEST_TTL_S)


def clear_stop(connection: Redis, job_id: str) -> None:
    """Drop a job's stop request, if any (`connection` may be a pipeline): the job has ended."""
    connection.delete(stop_key(job_id))


def stop_requested(job: Job | None = None) -> bool:
    """Whether the current job (or `job`) was asked to stop; False outside a job. One Redis read."""
    job = job or get_current_job()
    return job is not None and bool(job.connection.exists(stop_key(job.id)))


class JobAlreadyEnded(Exception):
    """The job has finished, failed, or was stopped or canceled before: nothing to cancel."""


class NotAllowed(PermissionError):
    """The caller may not cancel this job: it did not start it. Nothing was changed."""


def owner_of(job: Job) -> str | None:
    """Who started a job (a token's or a browser session's name), as recorded when it was enqueued."""
    owner = job.meta.get(OWNER_META_KEY)
    return owner if isinstance(owner, str) else None


@dataclass(frozen=True)
class CancelOutcome:
    """What a cancel request did: `done` when the job has ended now, else a stop is on its way."""

    payload: dict[str, Any]
    done: bool


def cancel_job(
    connection: Redis, job_id: str, allowed: Callable[[str | None], bool] | None = None
) -> CancelOutcome:
    """Cancel a waiting job, or ask its worker to stop a running one.

    Args:
        allowed: given the job's owner, whether the caller may cancel it (None: anyone may).

    Returns:
        The job's payload after the request; `done` is False when the worker has been asked to
        stop the job and has not yet done so (the stopped callback publishes the end).

    Raises:
        NoSuchJobError: the id is malformed, unknown, or its job has expired.
        JobAlreadyEnded: the job had already reached a terminal state.
        NotAllowed: `allowed` said no; nothing was changed.
    """
    job = fetch_job(job_id, connection)
    if allowed is not None and not allowed(owner_of(job)):
        raise NotAllowed(f"only the client that started job {job_id} may cancel it")
    status = job.get_status(refresh=False)
    if state_for(status) in TERMINAL_STATES:
        raise JobAlreadyEnded(
            f"job {job_id} has already ended ({JobStatus(status).value}); nothing to cancel"
        )
    if status == JobStatus.STARTED:
        return _stop(connection, job_id)
    try:
        job.cancel()
    except InvalidJobOperation as exc:
        raise JobAlreadyEnded(f"job {job_id} was canceled already") from exc
    log.info("job %s canceled (was %s)", job_id, status)
    payload = snapshot(job_id, connection)
    if payload["state"] == PROGRESS:
        # A worker took the job between our read and the cancel, and marked it started again.
        return _stop(connection, job_id)
    with connection.pipeline(transaction=False) as pipe:
        publish(pipe, payload)
        publish_line_moved(pipe, job.origin)
        pipe.execute()
    return CancelOutcome(payload, done=True)


def _stop(connection: Redis, job_id: str) -> CancelOutcome:
    # The cooperative request also reaches jobs under workers that cannot kill a work horse.
    request_stop(connection, job_id)
    try:
        send_stop_job_command(connection, job_id)
    except InvalidJobOperation:
        # No worker holds the job any more: it has just ended.
        payload = snapshot(job_id, connection)
        if is_terminal(payload):
            raise JobAlreadyEnded(f"job {job_id} has already ended; there is nothing to cancel") from None
        return CancelOutcome(payload, done=False)
    log.info("job %s: stop requested from its worker", job_id)
    payload = snapshot(job_id, connection)
    return CancelOutcome(payload, done=is_terminal(payload))
