"""Unit fixtures: one fakeredis server per test, shared by the app, queues and workers."""

import fakeredis
import pytest
from rq import Queue, SimpleWorker

from web import create_app


@pytest.fixture
def redis():
    """A fakeredis client on a fresh in-memory server."""
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def app(redis):
    """The app wired to the fakeredis server."""
    return create_app({"TESTING": True, "SECRET_KEY": "test-secret", "REDIS_CONNECTION": redis})


@pytest.fixture
def client(app):
    """A Flask test client."""
    return app.test_client()


@pytest.fixture
def queue(redis):
    """The default queue on the fakeredis server."""
    return Queue("default", connection=redis)


@pytest.fixture
def run_queued(redis):
    """Run every queued job to completion in this process, as a real worker would."""

    def run(*names: str) -> None:
        queues = [Queue(name, connection=redis) for name in (names or ("high", "default", "low"))]
        SimpleWorker(queues, connection=redis).work(burst=True)

    return run
