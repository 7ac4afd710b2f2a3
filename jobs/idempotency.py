"""Idempotency keys: the same key within a day starts one job, however many requests carry it.

The first request claims the key in the same transaction that enqueues its job
(`jobs.admission`), so two requests that race (a double click) cannot both win: the loser's job
is taken back and it answers the winner's. A key reused for a different request is a conflict,
not a silent replay of the wrong job.
"""

import hashlib
import json
import re
from typing import Any

from jobs.admission import Claim
from jobs.keys import idempotency_key

KEY_TTL_S = 24 * 60 * 60
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")


class BadIdempotencyKey(ValueError):
    """The Idempotency-Key header is empty, too long or not printable ASCII."""


class IdempotencyConflict(Exception):
    """The key was already used, within its day, for a different request."""


def fingerprint(request: dict[str, Any]) -> str:
    """A stable digest of what a request asks for, to tell a replay from a reuse."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def claim(key: str, request_fingerprint: str, job_id: str) -> Claim:
    """The claim a start takes with its job (`jobs.admission` takes it atomically with the enqueue).

    Raises:
        BadIdempotencyKey: the key is not 1-255 printable ASCII characters.
    """
    if not KEY_PATTERN.fullmatch(key):
        raise BadIdempotencyKey("Idempotency-Key must be 1 to 255 printable ASCII characters")
    value = json.dumps({"job_id": job_id, "fingerprint": request_fingerprint})
    return Claim(idempotency_key(key), value, KEY_TTL_S)


def earlier_job_id(stored: str, request_fingerprint: str) -> str:
    """The job an earlier request with the same key started, from its stored claim.

    Raises:
        IdempotencyConflict: the key was used for a different request.
    """
    earlier = json.loads(stored)
    if earlier["fingerprint"] != request_fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was already used for a different request")
    return earlier["job_id"]
