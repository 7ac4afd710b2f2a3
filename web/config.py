"""Settings for the web side: the only reader of os.environ there.

Defaults work on a laptop; every setting can come from the environment under the same
name. `REDIS_URL` and `SECRET_KEY` have no default: `make run` provides both.
"""

import os
from typing import Any

DEFAULTS: dict[str, Any] = {
    "REDIS_URL": None,
    "SECRET_KEY": None,
    "QUEUES": "high,default,low",
    # Seconds a Redis command may take before the request answers 503.
    "REDIS_SOCKET_TIMEOUT_S": 2.0,
    # Redis connections one web process may hold; a request waits for a free one (503 after
    # REDIS_SOCKET_TIMEOUT_S) instead of failing at once.
    "REDIS_MAX_CONNECTIONS": 50,
    # Largest request body accepted, in bytes (413 beyond it).
    "MAX_CONTENT_LENGTH": 64 * 1024,
}


def from_environment(environ: os._Environ | dict[str, str] = os.environ) -> dict[str, Any]:
    """Defaults overlaid with whatever the environment sets, converted to the default's type."""
    settings = dict(DEFAULTS)
    for name, default in DEFAULTS.items():
        raw = environ.get(name)
        if raw is None or raw == "":
            continue
        settings[name] = type(default)(raw) if default is not None else raw
    return settings


def queue_names(value: str | list[str]) -> list[str]:
    """The configured queue names, highest priority first."""
    names = value.split(",") if isinstance(value, str) else value
    return [name.strip() for name in names if name.strip()]
