"""Unit fixtures: one fakeredis server per test, shared by the app, queues and workers."""

import json
import os
from pathlib import Path

import fakeredis
import pytest
from rq import Queue, SimpleWorker

from jobs.keys import channel_for
from support.apps import UNIT_SETTINGS
from web import create_app, tokens


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


@pytest.fixture
def make_token(redis):
    """Create an API token with these scopes; returns its `Authorization` header."""
    made = iter(range(1000))

    def make(*scopes: str, name: str | None = None) -> dict[str, str]:
        secret = tokens.create(redis, name or f"token-{next(made)}", frozenset(scopes))
        return {"Authorization": f"Bearer {secret}"}

    return make


# Debian's chromium, shared by tests/browser and tests/security: one Playwright per session
# (a second sync Playwright in the same thread refuses to start).
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# The flags STACK.md measured: headless in a container, no network chatter of its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium under Playwright, launched once."""
    if not CHROMIUM.exists():
        message = f"no browser at {CHROMIUM}: run `make browser` (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    # Generous deadlines (conditions, not sleeps): the machine may be busy with other suites.
    expect.set_options(timeout=15_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
