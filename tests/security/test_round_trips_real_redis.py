"""A start takes two Redis round trips on a real server, with every check in place."""

import pytest
from redis.connection import AbstractConnection

from support.apps import UNIT_SETTINGS
from tests.helpers import open_page
from web import create_app, tokens

pytestmark = pytest.mark.integration


@pytest.fixture
def sends(monkeypatch):
    """Every packed send to Redis (one per command, or per whole pipeline)."""
    sent: list[bytes] = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(b"".join(command) if isinstance(command, list) else command)
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return sent


def test_starts_take_two_round_trips(server, sends):
    app = create_app(
        {**UNIT_SETTINGS, "REDIS_URL": server.url, "START_RATE_LIMIT": 1000, "QUEUE_MAX_JOBS": 10**6}
    )
    secret = tokens.create(server.client, "round-trips", frozenset({"start:*"}))
    anonymous, browser = app.test_client(), app.test_client()
    open_page(browser)
    token = {"Authorization": f"Bearer {secret}"}
    mail = {"name": "send_email", "args": {"to": ["a@example.com"], "subject": "x"}, "delay_seconds": 600}
    starts = [
        lambda: anonymous.post("/longtask"),
        lambda: anonymous.post(
            "/longtask", json={"steps": 2}, headers={"Idempotency-Key": f"k-{len(sends)}"}
        ),
        lambda: browser.post("/longtask"),
        lambda: anonymous.post("/api/jobs", json=mail, headers=token),
    ]
    for start in starts:
        assert start().status_code == 202  # warm: connections say hello, scripts load, RQ reads the version
    for start in starts:
        before = len(sends)
        assert start().status_code == 202
        assert len(sends) - before == 2, sends[before:]
