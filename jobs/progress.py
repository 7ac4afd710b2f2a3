"""Progress for job authors: one call to save and publish how far a job has come.

The only writer of `job.meta`. Each saved update is stored under meta["progress"] (so
`/status/<id>` reads it from Redis) and published on the job's channel (so open event
streams get it at once). The terminal callbacks publish the final payload, built from their
own arguments, because RQ has not yet stored FINISHED or FAILED when they run.
"""

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import get_current_job
from rq.job import Job, JobStatus

from jobs.contract import exception_message, isoformat, to_payload

log = logging.getLogger(__name__)

KEY_PREFIX = "rq-progress"
DEFAULT_MAX_SAVES_PER_S = 10.0


def channel_for(job_id: str) -> str:
    """The pub/sub channel that carries one job's payloads."""
    return f"{KEY_PREFIX}:events:{job_id}"


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
    `total` is always saved at once.

    Args:
        current: steps done so far.
        total: steps in all.
        status: a short sentence for people watching the bar.
        clock: seconds from a monotonic clock; tests pass their own.

    Returns:
        True when this update was saved now, False when it was deferred or there is no job.
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
    _save(job, progress)
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


def _save(job: Job, progress: dict[str, Any]) -> None:
    progress["updated_at"] = isoformat(datetime.now(UTC))
    job.meta["progress"] = progress
    payload = to_payload(job.id, JobStatus.STARTED, job.meta)
    # What job.save_meta() writes, and the PUBLISH after it, in one round trip instead of two;
    # Redis runs them in order, so a subscriber that re-reads the job sees the saved meta.
    pipe = job.connection.pipeline(transaction=False)
    pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))
    pipe.publish(channel_for(job.id), _encode(payload))
    pipe.execute()


def on_success(job: Job, connection: Redis, result: Any) -> None:
    """RQ success callback: save the last deferred update and publish SUCCESS."""
    flush(job)
    publish(connection, to_payload(job.id, JobStatus.FINISHED, job.meta, result=result))


def on_failure(job: Job, connection: Redis, exc_type: type, exc_value: BaseException, traceback: Any) -> None:
    """RQ failure callback: keep the exception's message in meta and publish FAILURE."""
    flush(job)
    job.meta["error"] = exception_message(exc_value)
    job.save_meta()
    publish(connection, to_payload(job.id, JobStatus.FAILED, job.meta))


def on_stopped(job: Job, connection: Redis) -> None:
    """RQ stopped callback: publish FAILURE with the status "stopped"."""
    _throttles.pop(job.id, None)
    publish(connection, to_payload(job.id, JobStatus.STOPPED, job.meta))
