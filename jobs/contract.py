"""The status contract: an RQ job's status and progress meta as the tutorial's payload.

Pure functions only. The status API, the event stream and the terminal callbacks all
build their JSON here, so every reader sees the same shape.
"""

import logging
import math
from datetime import UTC, datetime
from typing import Any

from rq.exceptions import AbandonedJobError
from rq.job import JobStatus

from jobs.estimate import time_left

log = logging.getLogger(__name__)

PENDING = "PENDING"
PROGRESS = "PROGRESS"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
TERMINAL_STATES = frozenset({SUCCESS, FAILURE})

STATE_BY_STATUS: dict[JobStatus, str] = {
    JobStatus.CREATED: PENDING,
    JobStatus.QUEUED: PENDING,
    JobStatus.DEFERRED: PENDING,
    JobStatus.SCHEDULED: PENDING,
    JobStatus.READY_TO_ENQUEUE: PENDING,
    JobStatus.RATE_LIMITED: PENDING,
    JobStatus.STARTED: PROGRESS,
    JobStatus.FINISHED: SUCCESS,
    JobStatus.FAILED: FAILURE,
    JobStatus.STOPPED: FAILURE,
    JobStatus.CANCELED: FAILURE,
}

# `to_payload`'s usual_s when nobody read the job's history: the payload then has no "usual_s".
NOT_READ = object()
# What a PENDING payload says of its place in line (`jobs.line`).
LINE_FIELDS = ("position", "expected_start_s")

PENDING_STATUS = "Pending..."
RUNNING_STATUS = "Running..."
SUCCESS_STATUS = "Task completed!"
MAX_ERROR_CHARS = 200
# A running job that has saved no progress for this long is reported stalled (not failed);
# a registered job sets its own (`JobSpec.stall_after_s`, kept in meta["stall_after_s"]).
DEFAULT_STALL_AFTER_S = 120
# A job whose worker (or work horse) died mid-run: RQ records it without a message of its own.
WORKER_LOST_STATUS = "worker lost: the process running this job died before it finished"
# What RQ stores for such jobs: StartedJobRegistry.cleanup() and the worker seeing its horse die.
_WORKER_LOST_MARKERS = (f"due to {AbandonedJobError.__name__}", "Work-horse terminated unexpectedly")

# The tutorial's jobs return their final progress along with the result.
_TUTORIAL_RESULT_KEYS = frozenset({"current", "total", "status", "result"})
_NO_RESULT = object()


def state_for(status: JobStatus | str | None) -> str:
    """Return the contract state for an RQ job status; an unknown status is PENDING, logged."""
    try:
        return STATE_BY_STATUS[JobStatus(status)]
    except ValueError:
        log.warning("unknown RQ job status %r, reported as %s", status, PENDING)
        return PENDING


def is_terminal(payload: dict[str, Any]) -> bool:
    """Whether a payload is final: the job will not change state again by itself."""
    return payload.get("state") in TERMINAL_STATES


def short_error(exc_string: str | None) -> str:
    """Reduce a stored traceback to its exception message, never the traceback itself.

    Args:
        exc_string: what RQ stores for a failed job (a formatted traceback, or a sentence).

    Returns:
        The message of the last exception line ("boom" for "ValueError: boom"), or the
        exception's type name when it has no message, at most MAX_ERROR_CHARS long.
    """
    if any(marker in (exc_string or "") for marker in _WORKER_LOST_MARKERS):
        return WORKER_LOST_STATUS
    lines = [line.strip() for line in (exc_string or "").strip().splitlines() if line.strip()]
    if not lines:
        return "failed"
    last = lines[-1]
    head, sep, message = last.partition(": ")
    if sep and head.replace(".", "").replace("_", "").isalnum():
        last = message
    elif not sep and last.replace(".", "").replace("_", "").isalnum():
        last = last.rsplit(".", 1)[-1]
    return last[:MAX_ERROR_CHARS]


def exception_message(exc: BaseException) -> str:
    """The readable message of an exception: its text, or its type name when it has none."""
    if isinstance(exc, AbandonedJobError):
        return WORKER_LOST_STATUS
    return (str(exc) or type(exc).__name__)[:MAX_ERROR_CHARS]


def isoformat(moment: datetime | None) -> str | None:
    """ISO 8601 with microseconds in UTC, as RQ itself writes timestamps."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_payload(
    job_id: str,
    status: JobStatus | str | None,
    meta: dict[str, Any] | None,
    *,
    result: Any = _NO_RESULT,
    error: str | None = None,
    updated_at: str | None = None,
    eta: datetime | None = None,
    line: dict[str, Any] | None = None,
    usual_s: float | None | object = NOT_READ,
    elapsed_s: float | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Build the contract payload for one job.

    Args:
        job_id: the RQ job id.
        status: the RQ job status.
        meta: the job's meta; progress lives under meta["progress"].
        result: the job's return value, used when the state is SUCCESS.
        error: a short failure message, used when the state is FAILURE.
        updated_at: fallback for "updated_at" when no progress was ever saved.
        eta: when a scheduled job (delayed, or waiting to retry) is due to be queued.
        line: a queued job's place in line (`jobs.line.place`): its "position" and
            "expected_start_s"; absent ones are null.
        usual_s: how long a running job like this one usually takes (`jobs.durations.usual_s`;
            None without history); NOT_READ (the default) leaves "usual_s" out of the payload.
        elapsed_s: seconds a running job has run, for the time left from `usual_s`.
        now: the current time, for the "in N s" of a retry and the stall check (tests pass their own).

    Returns:
        {"id", "state", "current", "total", "status", "updated_at"}, plus "result" on SUCCESS,
        "eta" on a PENDING job that has one, "position" and "expected_start_s" on every PENDING
        job (null where they cannot be known: deferred, scheduled, or no evidence), and
        "remaining_s", "stalled" and (unless NOT_READ) "usual_s" on PROGRESS.
    """
    meta = meta or {}
    progress = meta.get("progress") or {}
    state = state_for(status)
    payload: dict[str, Any] = {
        "id": job_id,
        "state": state,
        "current": progress.get("current", 0),
        "total": progress.get("total", 1),
        "status": progress.get("status") or RUNNING_STATUS,
        "updated_at": progress.get("updated_at") or updated_at,
    }
    if state == PENDING:
        payload["status"] = _pending_status(meta, eta, now)
        if eta is not None:
            payload["eta"] = isoformat(eta)
        payload.update({field: (line or {}).get(field) for field in LINE_FIELDS})
    elif state == PROGRESS:
        usual = None if usual_s is NOT_READ else usual_s
        payload.update(_running_fields(payload, progress.get("rate"), meta, now, usual, elapsed_s))
        if usual_s is not NOT_READ:
            payload["usual_s"] = usual_s
    elif state == SUCCESS:
        payload.update(_success_fields(payload, result))
    elif state == FAILURE:
        payload["status"] = _failure_status(status, meta, error)
    return payload


def to_group_payload(group_id: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    """Fold a group's job payloads (in the group's order) into the group's payload.

    Returns:
        {"id", "state", "current", "total", "status", "done", "failed", "jobs"}: `total` is the
        number of jobs and `current` the sum of each job's fraction done; `done` counts the jobs
        that have ended (either way) and `failed` those that ended in FAILURE. The state is
        PENDING while every job waits, SUCCESS when all succeeded, FAILURE when all ended and some
        failed, PROGRESS otherwise; `jobs` holds each job's id, state, current, total and status.
    """
    ended = [member for member in members if member["state"] in TERMINAL_STATES]
    failed = sum(member["state"] == FAILURE for member in ended)
    if len(ended) == len(members):
        state = FAILURE if failed else SUCCESS
    elif all(member["state"] == PENDING for member in members):
        state = PENDING
    else:
        state = PROGRESS
    return {
        "id": group_id,
        "state": state,
        "current": round(sum(_fraction_done(member) for member in members), 4),
        "total": len(members),
        "status": _group_status(state, len(members), len(ended), failed),
        "done": len(ended),
        "failed": failed,
        "jobs": [{key: member[key] for key in GROUP_JOB_FIELDS} for member in members],
    }


GROUP_JOB_FIELDS = ("id", "state", "current", "total", "status")


def _fraction_done(payload: dict[str, Any]) -> float:
    if payload["state"] == SUCCESS:
        return 1.0
    total = payload.get("total") or 0
    return min(1.0, max(0.0, (payload.get("current") or 0) / total)) if total > 0 else 0.0


def _group_status(state: str, jobs: int, ended: int, failed: int) -> str:
    if state == PENDING:
        return PENDING_STATUS
    if state == SUCCESS:
        return f"all {jobs} jobs done"
    return f"{ended} of {jobs} jobs done" + (f", {failed} failed" if failed else "")


def _pending_status(meta: dict[str, Any], eta: datetime | None, now: datetime | None) -> str:
    retry = meta.get("retry") or {}
    if not retry.get("attempt"):
        return PENDING_STATUS
    text = f"retrying {retry['attempt']}/{retry['max']}"
    if eta is None:
        return text
    wait_s = math.ceil((eta - (now or datetime.now(UTC))).total_seconds())
    return f"{text} in {wait_s} s" if wait_s > 0 else text


def _running_fields(
    payload: dict[str, Any],
    rate: dict[str, Any] | None,
    meta: dict[str, Any],
    now: datetime | None,
    usual_s: float | None,
    elapsed_s: float | None,
) -> dict[str, Any]:
    """Time left, and whether the job has gone quiet for longer than its stall_after_s."""
    stall_after_s = meta.get("stall_after_s") or DEFAULT_STALL_AFTER_S
    quiet_s = _seconds_since(payload["updated_at"], now)
    if quiet_s is not None and quiet_s >= stall_after_s:
        return {"status": f"no progress for {duration(quiet_s)}", "remaining_s": None, "stalled": True}
    left = time_left(rate, payload["current"], payload["total"], usual_s, elapsed_s)
    return {"remaining_s": left, "stalled": False}


def _seconds_since(moment: str | None, now: datetime | None) -> float | None:
    try:
        then = datetime.fromisoformat(moment) if moment else None
    except ValueError:
        return None
    if then is None:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return ((now or datetime.now(UTC)) - then).total_seconds()


def duration(seconds: float) -> str:
    """A duration for people, rounded down: "45 s", "2 min", "1 h 5 min"."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _success_fields(payload: dict[str, Any], result: Any) -> dict[str, Any]:
    if isinstance(result, dict) and _TUTORIAL_RESULT_KEYS <= result.keys():
        return {key: result[key] for key in _TUTORIAL_RESULT_KEYS}
    total = payload["total"] or 1
    fields = {"current": total, "total": total, "status": SUCCESS_STATUS}
    fields["result"] = None if result is _NO_RESULT else result
    return fields


def _failure_status(status: JobStatus | str | None, meta: dict[str, Any], error: str | None) -> str:
    if status in (JobStatus.STOPPED, JobStatus.CANCELED):
        return JobStatus(status).value
    return meta.get("error") or error or "failed"
