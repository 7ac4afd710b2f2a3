"""Unit-test apps: the settings every one starts from, and one whose Redis is unreachable."""

from typing import Any

from flask import Flask

# No background threads in unit tests (a test that needs the events listener turns it on).
UNIT_SETTINGS: dict[str, Any] = {"TESTING": True, "SECRET_KEY": "test-secret", "BACKGROUND_THREADS": False}
# Short, and no retries: redis-py's default ones only make the 503 slower to arrive.
UNREACHABLE_TIMEOUT_S = 0.2


def unreachable_redis_app(**overrides: Any) -> Flask:
    """The app on a Redis client whose server is not there (a free port): every Redis call fails fast."""
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from support.servers import free_port
    from web import create_app

    dead = Redis(
        port=free_port(),
        socket_connect_timeout=UNREACHABLE_TIMEOUT_S,
        socket_timeout=UNREACHABLE_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    settings = {**UNIT_SETTINGS, "REDIS_CONNECTION": dead, "REDIS_SOCKET_TIMEOUT_S": UNREACHABLE_TIMEOUT_S}
    return create_app({**settings, **overrides})
