"""The rate limit on anonymous starts: Flask-Limiter, counting in the app's own Redis.

A start without a token (`POST /longtask`, `POST /api/jobs`, and each job of a `POST /api/groups`)
counts against its client address: at most START_RATE_LIMIT a minute (0 turns the limit off),
then 429 JSON with Retry-After.
The counters live in Redis, reached through the app's own connection pool (its timeouts, and
Sentinel when configured, apply), so every web process on every host shares them. Starts with
a token are not limited here. Behind a proxy, TRUSTED_PROXIES makes the client address the
one the proxy saw (web/__init__.py applies werkzeug's ProxyFix).
"""

import math
import time

from flask import Flask, current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

from jobs.keys import rate_limit_prefix
from web.errors import answer_error

# The routes that start jobs; every other route is exempt.
START_ENDPOINTS = frozenset({"jobs_api.longtask", "jobs_api.start", "jobs_api.start_together"})
GROUP_ENDPOINT = "jobs_api.start_together"


def init_app(app: Flask) -> None:
    """Limit anonymous starts per client address, unless START_RATE_LIMIT is 0."""
    per_minute = int(app.config["START_RATE_LIMIT"])
    if per_minute <= 0:
        return
    limiter = Limiter(
        get_remote_address,
        app=app,
        application_limits=[f"{per_minute}/minute"],
        application_limits_cost=starts_asked,
        storage_uri="redis://",
        storage_options={
            "connection_pool": app.extensions["rq"]["redis"].connection_pool,
            "key_prefix": rate_limit_prefix(),
        },
        strategy="fixed-window",
        # Flask-Limiter's headers would read the window on every limited request: a round trip more.
        headers_enabled=False,
    )
    # A request filter, unlike application_limits_exempt_when, is asked before Flask-Limiter
    # resolves any limit: every other request (a status read) skips that work, a quarter of it.
    limiter.request_filter(is_exempt)
    app.extensions["start_limiter"] = limiter
    app.register_error_handler(RateLimitExceeded, too_many_starts)


def is_exempt() -> bool:
    """Whether the request is not an anonymous start (a token's start is not counted here)."""
    if request.endpoint not in START_ENDPOINTS:
        return True
    return request.headers.get("Authorization", "").lower().startswith("bearer ")


def starts_asked() -> int:
    """How many jobs the request asks to start: each job of a group counts (at least 1)."""
    if request.endpoint != GROUP_ENDPOINT:
        return 1
    body = request.get_json(silent=True)
    jobs = body.get("jobs") if isinstance(body, dict) else None
    return max(1, len(jobs)) if isinstance(jobs, list) else 1


def too_many_starts(exc: RateLimitExceeded):
    """429 JSON with Retry-After: the seconds until this address's window ends."""
    limit = current_app.extensions["start_limiter"].current_limit
    window_s = limit.limit.get_expiry() if limit else 60
    retry_after = min(window_s, max(1, math.ceil(limit.reset_at - time.time()))) if limit else window_s
    return answer_error(
        429,
        f"too many starts from this address without a token ({exc.description}); "
        f"try again in {retry_after} s, or use an API token",
        {"Retry-After": str(retry_after)},
    )
