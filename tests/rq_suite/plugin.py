"""pytest plugin for RQ's own suite (`run.py` loads it with `-p rq_suite.plugin`).

- Runs RQ's tests against our worker (`swap.use_our_worker`) when `RQ_SUITE_WORKER=ours`.
- Claims a database of the local Redis for this process (`support.local_redis`, the integration
  tests' lock) the first time RQ's tests look for an empty one, and keeps holding it through RQ's
  FLUSHDB before and after each test; gives it up at the end. Each xdist worker claims its own.
- Marks the tests listed in `expected_failures.txt` as strict xfails: a listed test that passes
  fails the run, so the list stays true. Under the stock worker only the `stock:` entries apply.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis

from support.local_redis import ClaimedDatabase, claim_local_database

from .swap import DB_ENV, pin_database, runs_our_worker, use_our_worker

EXPECTED_FAILURES = Path(__file__).with_name("expected_failures.txt")
# RQ's tests hard-code this server (`Redis()`, `redis://127.0.0.1:6379/<db>`).
RQ_TEST_REDIS_URL = "redis://127.0.0.1:6379"
STOCK_PREFIX = "stock:"

_claimed: ClaimedDatabase | None = None


@dataclass(frozen=True)
class ExpectedFailure:
    """A test allowed to fail, why, and whether RQ's own worker fails it here too."""

    test_id: str
    reason: str

    @property
    def fails_with_stock_worker(self) -> bool:
        """Whether the reason says the stock worker fails it too."""
        return self.reason.startswith(STOCK_PREFIX)


def read_expected_failures(text: str) -> dict[str, ExpectedFailure]:
    """Parse the list: one `test id  reason` per line; blank lines and `#` comments skipped.

    Raises:
        ValueError: a line without a reason, or a test listed twice.
    """
    entries: dict[str, ExpectedFailure] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        test_id, _, reason = line.partition(" ")
        if not reason.strip():
            raise ValueError(f"expected_failures.txt line {number}: {test_id} has no reason")
        if test_id in entries:
            raise ValueError(f"expected_failures.txt line {number}: {test_id} is listed twice")
        entries[test_id] = ExpectedFailure(test_id, reason.strip())
    return entries


class _ClaimKeepingRedis(Redis):
    """A client whose FLUSHDB keeps this process's claim on its database (RQ's tests flush often)."""

    def flushdb(self, asynchronous: bool = False, **kwargs) -> bool:
        assert _claimed is not None
        _claimed.flush()
        return True


def _connect_claimed() -> Redis:
    global _claimed
    if _claimed is None:
        _claimed = claim_local_database(RQ_TEST_REDIS_URL)
        os.environ[DB_ENV] = str(_claimed.db)  # for the `rqworker` processes RQ's tests start
    return _ClaimKeepingRedis(db=_claimed.db)


def pytest_configure(config: pytest.Config) -> None:
    if runs_our_worker():
        use_our_worker()
    pin_database(_connect_claimed)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _claimed is not None:
        _claimed.release()


@pytest.hookimpl(tryfirst=True)  # before `-k` deselects: a stale entry is found in any run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expected = read_expected_failures(EXPECTED_FAILURES.read_text())
    collected = {item.nodeid for item in items}
    files = {nodeid.split("::")[0] for nodeid in collected}
    stale = [test_id for test_id in expected if test_id.split("::")[0] in files and test_id not in collected]
    if stale:
        raise pytest.UsageError(f"expected_failures.txt lists tests RQ's suite does not have: {stale}")
    ours = runs_our_worker()
    for item in items:
        entry = expected.get(item.nodeid)
        if entry is not None and (ours or entry.fails_with_stock_worker):
            item.add_marker(pytest.mark.xfail(reason=entry.reason, strict=True))
