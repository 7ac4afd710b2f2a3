"""Idempotency keys: the same key within a day starts one job, however many requests carry it.

The first request claims the key with `SET NX` before it enqueues, so two requests that race
(a double click) cannot both win: the loser reads the winner's job id. A key reused for a
different request is a conflict, not a silent replay of the wrong job.
"""

import hashlib
import json
import logging
import re
import time
from typing import Any

from redis import Redis
from rq.job import Job

from jobs.keys import idempotency_key

log = logging.getLogger(__name__)

KEY_TTL_S = 24 * 60 * 60
# How long a replay waits for the winning request to finish enqueuing its job.
IN_FLIGHT_WAIT_S = 2.0
_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")


class BadIdempotencyKey(ValueError):
    """The Idempotency-Key header is empty, too long or not printable ASCII."""


class IdempotencyConflict(Exception):
    """The key was already used, within its day, for a different request."""


def fingerprint(request: dict[str, Any]) -> str:
    """A stable digest of what a request asks for, to tell a replay from a reuse."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def claim(connection: Redis, key: str, request_fingerprint: str, job_id: str) -> str | None:
    """Claim `key` for a job about to be enqueued as `job_id`.

    Returns:
        None when this call claimed the key (the caller must enqueue `job_id`, or `release`);
        otherwise the id of the job an earlier request with the same key started.

    Raises:
        BadIdempotencyKey: the key is not 1-255 printable ASCII characters.
        IdempotencyConflict: the key was used for a different request.
    """
    if not _KEY_PATTERN.fullmatch(key):
        raise BadIdempotencyKey("Idempotency-Key must be 1 to 255 printable ASCII characters")
    value = json.dumps({"job_id": job_id, "fingerprint": request_fingerprint})
    for _ in range(3):
        if connection.set(idempotency_key(key), value, nx=True, ex=KEY_TTL_S):
            return None
        stored = connection.get(idempotency_key(key))
        if stored is not None:
            break
    else:
        raise RuntimeError("idempotency key vanished three times in a row")
    earlier = json.loads(stored)
    if earlier["fingerprint"] != request_fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was already used for a different request")
    _wait_for_job(connection, earlier["job_id"])
    return earlier["job_id"]


def release(connection: Redis, key: str, job_id: str) -> None:
    """Give a key back after the job it was claimed for could not be enqueued."""
    stored = connection.get(idempotency_key(key))
    if stored is not None and json.loads(stored)["job_id"] == job_id:
        connection.delete(idempotency_key(key))


def _wait_for_job(connection: Redis, job_id: str) -> None:
    # The winner claims before it enqueues; a replay landing in between waits a moment so
    # its status URL does not answer 404. A job that has since expired is not waited for long.
    deadline = time.monotonic() + IN_FLIGHT_WAIT_S
    while not connection.exists(Job.key_for(job_id)) and time.monotonic() < deadline:
        time.sleep(0.02)
