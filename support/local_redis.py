"""Databases of the local Redis that a test run claims for itself, under a lock.

The local Redis (127.0.0.1:6379, or `TEST_LOCAL_REDIS_URL`) is shared by every test run on the
machine: the integration tests (one claim per pytest process) and RQ's own suite (`make
conformance`, one claim per process too). A run takes a database by setting `LOCK_KEY` there with
NX; it may take one that is empty or that carries `OWNER_KEY` (left by an earlier run of ours).
Nothing here ever flushes a database it has not claimed.
"""

import os
import uuid
from dataclasses import dataclass

from redis import Redis

LOCAL_REDIS_URL = os.environ.get("TEST_LOCAL_REDIS_URL", "redis://127.0.0.1:6379")
# Marks a database of the local Redis as belonging to these tests, so a later run may reuse it.
OWNER_KEY = "rq-progress:test-db-owner"
LOCK_KEY = "rq-progress:test-db-lock"
# Longer than any run; a run that dies leaves its database claimable again after this.
LOCK_TTL_S = 1800


@dataclass
class ClaimedDatabase:
    """A database of the local Redis held by this process: its number, URL, a client and the lock's token."""

    db: int
    url: str
    client: Redis
    token: str

    def flush(self) -> None:
        """Empty the database and keep holding it, in one transaction (no moment without the lock)."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.flushdb()
            pipe.set(OWNER_KEY, "1")
            pipe.set(LOCK_KEY, self.token, ex=LOCK_TTL_S)
            pipe.execute()

    def release(self) -> None:
        """Empty the database and give it up, marked as ours for the next run."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.flushdb()
            pipe.set(OWNER_KEY, "1")
            pipe.execute()


def claim_local_database(base_url: str = LOCAL_REDIS_URL) -> ClaimedDatabase:
    """Pick a database of the local Redis that is empty or was ours, from 15 down, and lock it.

    Raises:
        RuntimeError: every database is locked by another run or holds someone else's data.
    """
    token = uuid.uuid4().hex
    for db in range(15, 0, -1):
        client = Redis.from_url(f"{base_url}/{db}")
        if not client.set(LOCK_KEY, token, nx=True, ex=LOCK_TTL_S):
            continue
        if client.exists(OWNER_KEY) or client.dbsize() == 1:
            claimed = ClaimedDatabase(db, f"{base_url}/{db}", client, token)
            claimed.flush()
            return claimed
        client.delete(LOCK_KEY)
    raise RuntimeError(f"no free database on {base_url}")


def require_local_redis() -> None:
    """Go on only when the local Redis answers: else fail the test in CI, skip it elsewhere."""
    import pytest  # for tests only: the claim above serves RQ's suite's plugin as well

    try:
        Redis.from_url(LOCAL_REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the local Redis at {LOCAL_REDIS_URL}: {exc}")
        pytest.skip(f"no local Redis at {LOCAL_REDIS_URL}: {exc}")
