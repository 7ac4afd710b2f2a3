"""Errors by audience: JSON for API routes and clients that prefer it, a small HTML page for people.

`error_response()` is the one JSON shape of a failed request; `answer_error()` picks JSON or the
`error.html` page for the app-wide handlers. API paths always answer JSON; elsewhere (the page,
an unknown URL) a client whose Accept header prefers text/html over JSON, as browsers' does,
gets the page.
"""

import logging
from functools import partial
from http import HTTPStatus

from flask import Flask, Response, jsonify, render_template, request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError as RedisOutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.exceptions import NoSuchGroupError, NoSuchJobError
from werkzeug.exceptions import HTTPException

from jobs.control import NotAllowed
from jobs.idempotency import BadIdempotencyKey, IdempotencyConflict
from jobs.joblog import BadLogId
from jobs.registry import BadParams, QueueFull, UnknownJob
from jobs.replication import NotReplicated

log = logging.getLogger(__name__)

# Headers an HTTP error carries that a client needs to act on it.
_KEPT_HEADERS = frozenset({"Allow", "Retry-After", "WWW-Authenticate"})
# Paths whose errors are always JSON: the API, a job's own URLs, the operators' routes.
API_PATHS = ("/api", "/status", "/groups", "/longtask", "/healthz", "/metrics", "/rq")
# Errors whose message is the answer's as it is, and their status.
_STATUS_OF: dict[type[Exception], int] = {
    BadParams: 400,
    BadIdempotencyKey: 400,
    BadLogId: 400,
    UnknownJob: 404,
    IdempotencyConflict: 409,
}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> tuple[Response, int]:
    """`{"error": {"code": status, "message": message}}` with that HTTP status."""
    response = jsonify({"error": {"code": status, "message": message}})
    if headers:
        response.headers.update(headers)
    return response, status


def wants_html() -> bool:
    """Whether the current request's error should be the HTML page: not an API path, and the
    client's Accept header prefers text/html to JSON (no Accept, or `*/*`, means JSON)."""
    path = request.path
    if any(path == api or path.startswith(f"{api}/") for api in API_PATHS):
        return False
    accept = request.accept_mimetypes
    return accept.quality("text/html") > accept.quality("application/json")


def answer_error(status: int, message: str, headers: dict[str, str] | None = None):
    """The error for the caller's audience: `error_response()` JSON, or the escaped `error.html` page."""
    if not wants_html():
        return error_response(status, message, headers)
    page = render_template("error.html", code=status, name=HTTPStatus(status).phrase, message=message)
    return page, status, {"Content-Type": "text/html; charset=utf-8", **(headers or {})}


def _with_message(status: int, exc: Exception):
    return answer_error(status, str(exc))


def init_app(app: Flask) -> None:
    """Register handlers that turn every error into a JSON answer, or a page for people."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        kept = {name: value for name, value in exc.get_headers() if name in _KEPT_HEADERS}
        return answer_error(exc.code or 500, exc.description or exc.name, kept)

    for error, status in _STATUS_OF.items():
        app.register_error_handler(error, partial(_with_message, status))

    @app.errorhandler(QueueFull)
    @app.errorhandler(NotReplicated)
    def unavailable(exc: QueueFull | NotReplicated):
        return answer_error(503, str(exc), {"Retry-After": str(exc.retry_after_s)})

    @app.errorhandler(NotAllowed)
    def not_allowed(exc: NotAllowed):
        return answer_error(403, f"{exc}, or a token with the scope cancel:any")

    @app.errorhandler(NoSuchJobError)
    def no_such_job(exc: NoSuchJobError):
        return answer_error(404, "no such job (unknown, malformed, or its result has expired)")

    @app.errorhandler(NoSuchGroupError)
    def no_such_group(exc: NoSuchGroupError):
        return answer_error(404, "no such group (unknown, malformed, or all its jobs have expired)")

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    # A full Redis under `maxmemory-policy noeviction` refuses writes: unavailable, not our bug.
    @app.errorhandler(RedisOutOfMemoryError)
    def redis_down(exc: Exception):
        log.warning("Redis unavailable during %s %s: %s", request.method, request.path, exc)
        return answer_error(
            503, "the job store (Redis) is unavailable; try again shortly", {"Retry-After": "5"}
        )

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return answer_error(500, "internal error; it has been logged")
