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
    # Most jobs a queue may hold waiting; starting one more answers 503 with Retry-After.
    "QUEUE_MAX_JOBS": 1000,
    # rq-dashboard at /rq: off (404) unless both are set; `make run` generates a password.
    "RQ_DASHBOARD_USERNAME": None,
    "RQ_DASHBOARD_PASSWORD": None,
    # Whether this process may run background threads: the events fan-out listener (started
    # with the first event stream) and the lost-job check. Off, streams see changes only at
    # their heartbeat's snapshot re-read and no lost job is failed early; unit tests turn it off.
    "BACKGROUND_THREADS": True,
    # Seconds between checks for jobs whose worker died (0 turns the check off in this process).
    "LOST_JOB_CHECK_INTERVAL_S": 1.0,
    # Event streams: seconds of silence before a heartbeat and a snapshot re-read, and the
    # longest a stream lives (the browser then reconnects and starts from a fresh snapshot).
    "SSE_HEARTBEAT_S": 15.0,
    "SSE_MAX_AGE_S": 300.0,
    # Set on processes that do not serve event streams: the port of the listener that does (the
    # Procfile's `streams` line). Events URLs point there, on the host the client used, and a
    # stream asked of this process is redirected there. 0: this process serves its streams (the
    # streams line itself, one server alone, or behind a proxy that routes them by path).
    "EVENTS_PORT": 0,
    # The session cookie holds the ids of the jobs this browser started.
    "SESSION_COOKIE_SAMESITE": "Lax",
}


def from_environment(environ: os._Environ | dict[str, str] = os.environ) -> dict[str, Any]:
    """Defaults overlaid with whatever the environment sets, converted to the default's type."""
    settings = dict(DEFAULTS)
    for name, default in DEFAULTS.items():
        raw = environ.get(name)
        if raw is None or raw == "":
            continue
        if isinstance(default, bool):
            settings[name] = raw.strip().lower() in ("1", "true", "yes", "on")
        else:
            settings[name] = type(default)(raw) if default is not None else raw
    return settings


def queue_names(value: str | list[str]) -> list[str]:
    """The configured queue names, highest priority first."""
    names = value.split(",") if isinstance(value, str) else value
    return [name.strip() for name in names if name.strip()]
