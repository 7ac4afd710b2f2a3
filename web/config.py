"""Settings for the web side: the only reader of os.environ there.

Defaults work on a laptop; every setting can come from the environment under the same
name, and so can any of Flask's own (`SESSION_COOKIE_SECURE=1` behind HTTPS). `SECRET_KEY` and
where Redis is (`REDIS_URL`, or `REDIS_SENTINELS` and the names that go with it, parsed by
`jobs.connection`) have no default: `make run` provides them.
"""

import os
from datetime import timedelta
from typing import Any

from flask import Flask

from jobs.connection import SETTING_NAMES as REDIS_SETTING_NAMES

DEFAULTS: dict[str, Any] = {
    **{name: None for name in REDIS_SETTING_NAMES},
    "SECRET_KEY": None,
    "QUEUES": "high,default,low",
    # Seconds a Redis command may take before the request answers 503.
    "REDIS_SOCKET_TIMEOUT_S": 2.0,
    # Redis connections one web process may hold; a request waits for a free one (503 after
    # REDIS_SOCKET_TIMEOUT_S) instead of failing at once.
    "REDIS_MAX_CONNECTIONS": 50,
    # Largest request body accepted, in bytes (413 beyond it).
    "MAX_CONTENT_LENGTH": 64 * 1024,
    # With a replica attached, a start answers 202 only once a replica has the job (WAIT), and
    # 503 when none confirms within this many milliseconds; 0 answers without waiting.
    "REDIS_REPLICA_WAIT_MS": 500,
    # Most jobs a queue may hold waiting, queued plus scheduled (delayed, waiting to retry);
    # starting one more answers 503 with Retry-After.
    "QUEUE_MAX_JOBS": 1000,
    # Starts without a token per client address and minute (429 beyond it); 0 turns it off.
    "START_RATE_LIMIT": 60,
    # Proxies in front that set X-Forwarded-For/-Proto/-Host/-Port and are trusted to (0: none).
    "TRUSTED_PROXIES": 0,
    # rq-dashboard at /rq: off (404) unless both are set; `make run` generates a password.
    "RQ_DASHBOARD_USERNAME": None,
    "RQ_DASHBOARD_PASSWORD": None,
    # Whether this process may run background threads: the events fan-out listener (started
    # with the first event stream) and the lost-job check. Off, streams see changes only at
    # their heartbeat's snapshot re-read and no lost job is failed early; unit tests turn it off.
    "BACKGROUND_THREADS": True,
    # Seconds between checks for jobs whose worker died (0 turns the check off in this process).
    "LOST_JOB_CHECK_INTERVAL_S": 1.0,
    # How far ahead of now the check judges RQ's started-registry deadlines (web/reaper.py): a job
    # is failed once its heartbeat is about (worker's --job-monitoring-interval + 60 - this) s stale,
    # 25 s with the Procfile's 5. Under 60: a live job's deadline is only 60 s ahead. Tests raise it.
    "LOST_JOB_LOOKAHEAD_S": 40.0,
    # Event streams: seconds of silence before a heartbeat and a snapshot re-read, and the
    # longest a stream lives (the browser then reconnects and starts from a fresh snapshot).
    "SSE_HEARTBEAT_S": 15.0,
    "SSE_MAX_AGE_S": 300.0,
    # Set on processes that do not serve event streams: the port of the listener that does (the
    # Procfile's `streams` line). Events URLs point there, on the host the client used, and a
    # stream asked of this process is redirected there. 0: this process serves its streams (the
    # streams line itself, one server alone, or behind a proxy that routes them by path).
    "EVENTS_PORT": 0,
    # Set on a process that serves only event streams (the Procfile's `streams` line): the port of
    # the listener that serves the page. Pages from there, on the host the client used, may read a
    # browser's own stream (`GET /events`) across ports with its cookie; no other origin may.
    "PAGE_PORT": 0,
    # The session cookie holds the ids of the jobs this browser started.
    "SESSION_COOKIE_SAMESITE": "Lax",
}


# Flask settings whose default (None) does not show their type.
_FLASK_TYPES: dict[str, Any] = {
    "DEBUG": False,
    "PROPAGATE_EXCEPTIONS": False,
    "TRAP_BAD_REQUEST_ERRORS": False,
    "TEMPLATES_AUTO_RELOAD": False,
    "SEND_FILE_MAX_AGE_DEFAULT": 0,
    "TRUSTED_HOSTS": [],
    "SECRET_KEY_FALLBACKS": [],
}


def from_environment(environ: os._Environ | dict[str, str] = os.environ) -> dict[str, Any]:
    """Our defaults, then every one of our settings and of Flask's that the environment sets, typed.

    A setting is converted to its default's type: booleans from 1/true/yes/on, numbers,
    seconds for durations, comma-separated lists; text otherwise.
    """
    settings = dict(DEFAULTS)
    for name, default in {**Flask.default_config, **_FLASK_TYPES, **DEFAULTS}.items():
        raw = environ.get(name)
        if raw is not None and raw != "":
            settings[name] = _typed(raw, default)
    return settings


def _typed(raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, timedelta):
        return timedelta(seconds=float(raw))
    if isinstance(default, list | tuple):
        return [item.strip() for item in raw.split(",") if item.strip()]
    if isinstance(default, int | float):
        return type(default)(raw)
    return raw


def queue_names(value: str | list[str]) -> list[str]:
    """The configured queue names, highest priority first."""
    names = value.split(",") if isinstance(value, str) else value
    return [name.strip() for name in names if name.strip()]
