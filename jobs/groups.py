"""Groups of jobs, on RQ's own `Group`: started as one, read as one payload, cancelled together.

A group is RQ's: each of its jobs carries `group_id`, and RQ keeps their ids in the set
`Group.get_key(id)` and the group in its registry of groups, which workers' maintenance cleans
as the jobs expire (the group is gone with its last job). Each job's place in the group is in its
meta (`group_index`), so the group reads back in the order it was asked for. Every job of a
group is checked and built as a single start would be (`jobs.registry`), then all are enqueued
in one MULTI/EXEC that also checks the waiting cap of their queues (`jobs.admission`): all or
nothing.
"""

import logging
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import Field
from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchGroupError
from rq.group import Group
from rq.job import Job, JobStatus

from jobs.admission import FULL, enqueue_group_admitted
from jobs.contract import PENDING, is_terminal, isoformat, state_for, to_group_payload, to_payload
from jobs.control import CancelOutcome, JobAlreadyEnded, NotAllowed, cancel_job
from jobs.owned import GROUP, record_start
from jobs.params import Params
from jobs.registry import BadParams, QueueFull, UnknownJob, get_spec, new_job
from jobs.snapshot import JOB_ID_PATTERN, last_change
from jobs.worker.dequeue import ReliableQueue

log = logging.getLogger(__name__)

MAX_JOBS = 100
GROUP_INDEX = "group_index"


class GroupJob(Params):
    """One job of a group: a registered job's name, its arguments, and optionally its queue."""

    name: str = Field(description="one of the names GET /api/jobs lists")
    args: Any = Field(None, description="the job's arguments (its parameters' JSON Schema)")
    queue: str | None = Field(None, description="one of the configured queues; default: the job's own")


class GroupRequest(Params):
    """The body of `POST /api/groups`: the jobs to start together, all or none."""

    jobs: list[GroupJob] = Field(min_length=1, max_length=MAX_JOBS)


def start_group(
    connection: Redis,
    jobs: list[dict[str, Any]],
    *,
    owner: str | None = None,
    max_queued: int | None = None,
    remember: bool = False,
) -> tuple[str, list[Job]]:
    """Check every job as a single start would, then enqueue them all as one RQ group, or none.

    Args:
        jobs: `GroupRequest`'s `jobs`, checked: each {name, args, queue}.
        owner: who starts them (recorded in each job's meta; only they may cancel them).
        max_queued: refuse when a queue would hold more waiting jobs than this with the group's,
            checked atomically with the enqueue.
        remember: also record the group among the owner's rows, for a browser's stream (`jobs.owned`).

    Returns:
        The group's id and its jobs, in the order asked.

    Raises:
        UnknownJob, BadParams: a job of the group does not fit; the message names it (`jobs[2]`).
        QueueFull: a queue would hold more than `max_queued`; nothing was enqueued.
    """
    group = Group(connection, uuid.uuid4().hex)
    built: list[tuple[Queue, Job]] = []
    for index, item in enumerate(jobs):
        try:
            spec = get_spec(item["name"])
            kwargs = spec.validate(item["args"] if item["args"] is not None else {})
        except (UnknownJob, BadParams) as exc:
            raise type(exc)(f"jobs[{index}]: {exc}") from None
        target = ReliableQueue(item["queue"] or spec.queue, connection=connection)
        job = new_job(target, spec, kwargs, owner)
        job.group_id = group.name
        job.meta[GROUP_INDEX] = index
        built.append((target, job))
    also = partial(record_start, owner=owner, kind=GROUP, row_id=group.name) if remember and owner else None
    if enqueue_group_admitted(connection, group, built, max_queued=max_queued, also=also) == FULL:
        raise QueueFull(f"the group's jobs do not fit in their queues ({max_queued} jobs waiting at most)")
    log.info("group %s enqueued: %d jobs", group.name, len(built))
    return group.name, [job for _, job in built]


def member_ids(connection: Redis, group_id: str) -> list[str]:
    """The ids of the group's jobs, in no order (RQ's set; one round trip).

    Raises:
        NoSuchGroupError: the id is malformed or unknown (RQ drops a group with its last job).
    """
    if not JOB_ID_PATTERN.fullmatch(group_id):
        raise NoSuchGroupError(f"no such group: {group_id!r}")
    ids = [_text(job_id) for job_id in connection.smembers(Group.get_key(group_id))]
    if not ids:
        raise NoSuchGroupError(f"no such group: {group_id!r}")
    return ids


def members(connection: Redis, group_id: str) -> list[Job]:
    """The group's jobs that Redis still holds, in the group's order (two round trips).

    Raises:
        NoSuchGroupError: the id is malformed or unknown, or every job of the group has expired.
    """
    jobs = [job for job in Job.fetch_many(member_ids(connection, group_id), connection) if job is not None]
    if not jobs:
        raise NoSuchGroupError(f"no such group: {group_id!r}")
    return sorted(jobs, key=lambda job: (job.meta.get(GROUP_INDEX, 0), job.id))


def member_payload(job: Job) -> dict[str, Any]:
    """A group job's payload, from its hash alone (no result read: the group shows no results)."""
    return to_payload(job.id, job.get_status(refresh=False), job.meta, updated_at=isoformat(last_change(job)))


def member_payloads(connection: Redis, group_id: str) -> list[dict[str, Any]]:
    """The payloads of the group's jobs, in the group's order.

    Raises:
        NoSuchGroupError: the id is malformed or unknown, or every job of the group has expired.
    """
    return [member_payload(job) for job in members(connection, group_id)]


def group_snapshot(connection: Redis, group_id: str) -> dict[str, Any]:
    """The group's payload as Redis holds it now.

    Raises:
        NoSuchGroupError: the id is malformed or unknown, or every job of the group has expired.
    """
    return to_group_payload(group_id, member_payloads(connection, group_id))


def cancel_group(
    connection: Redis, group_id: str, allowed: Callable[[list[Job]], bool] | None = None
) -> CancelOutcome:
    """Cancel the group's waiting jobs, then ask the workers of its running ones to stop them.

    Waiting jobs go first, so a worker freed by a stop does not start the next one.

    Args:
        allowed: given the group's jobs, whether the caller may cancel them (None: anyone may).

    Returns:
        The group's payload after the requests; `done` is False while stops are on their way.

    Raises:
        NoSuchGroupError: the id is malformed or unknown, or every job of the group has expired.
        JobAlreadyEnded: every job of the group had already ended, or ended before its cancel
            reached it (its final payload is published just before RQ stores its end).
        NotAllowed: `allowed` said no; nothing was changed.
    """
    jobs = members(connection, group_id)
    if allowed is not None and not allowed(jobs):
        raise NotAllowed(f"only the client that started group {group_id} may cancel it")
    statuses = {job.id: job.get_status(refresh=False) for job in jobs}
    waiting = [job.id for job in jobs if state_for(statuses[job.id]) == PENDING]
    running = [job.id for job in jobs if statuses[job.id] == JobStatus.STARTED]
    if not waiting and not running:
        raise JobAlreadyEnded(f"group {group_id} has already ended; there is nothing to cancel")
    ended_meanwhile = 0
    for job_id in waiting + running:
        try:
            cancel_job(connection, job_id)
        except JobAlreadyEnded:
            ended_meanwhile += 1
    if ended_meanwhile == len(waiting) + len(running):
        raise JobAlreadyEnded(f"group {group_id} has already ended; there is nothing to cancel")
    log.info("group %s: %d waiting jobs canceled, %d asked to stop", group_id, len(waiting), len(running))
    payload = group_snapshot(connection, group_id)
    return CancelOutcome(payload, done=is_terminal(payload))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
