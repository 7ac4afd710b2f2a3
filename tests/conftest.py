"""Unit fixtures: one fakeredis server per test, shared by the app, queues and workers."""

import json

import fakeredis
import pytest
from rq import Queue, SimpleWorker

from jobs.keys import channel_for
from support.apps import UNIT_SETTINGS
from web import create_app


@pytest.fixture
def redis():
    """A fakeredis client on a fresh in-memory server."""
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def app(redis):
    """The app wired to the fakeredis server."""
    return create_app({**UNIT_SETTINGS, "REDIS_CONNECTION": redis})


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


@pytest.fixture
def published(redis):
    """Collect what is published on any job channel, in order."""
    pubsub = redis.pubsub()
    pubsub.psubscribe(channel_for("*"))

    def drain() -> list[dict]:
        messages = []
        while (message := pubsub.get_message(timeout=0.01)) is not None:
            if message["type"] == "pmessage":
                messages.append(json.loads(message["data"]))
        return messages

    yield drain
    pubsub.close()
