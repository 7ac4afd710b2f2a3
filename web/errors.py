"""Errors as JSON: `error_response()` is the one way the app reports a failed request."""

import logging

from flask import Flask, Response, jsonify, request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.exceptions import NoSuchJobError
from werkzeug.exceptions import HTTPException

from jobs.idempotency import BadIdempotencyKey, IdempotencyConflict
from jobs.registry import BadParams, QueueFull, UnknownJob
from jobs.replication import NotReplicated

log = logging.getLogger(__name__)

# Headers an HTTP error carries that a client needs to act on it.
_KEPT_HEADERS = frozenset({"Allow", "Retry-After", "WWW-Authenticate"})


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> tuple[Response, int]:
    """`{"error": {"code": status, "message": message}}` with that HTTP status."""
    response = jsonify({"error": {"code": status, "message": message}})
    if headers:
        response.headers.update(headers)
    return response, status


def init_app(app: Flask) -> None:
    """Register handlers that turn every error into a JSON answer."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        kept = {name: value for name, value in exc.get_headers() if name in _KEPT_HEADERS}
        return error_response(exc.code or 500, exc.description or exc.name, kept)

    @app.errorhandler(BadParams)
    def bad_params(exc: BadParams):
        return error_response(400, str(exc))

    @app.errorhandler(BadIdempotencyKey)
    def bad_idempotency_key(exc: BadIdempotencyKey):
        return error_response(400, str(exc))

    @app.errorhandler(IdempotencyConflict)
    def idempotency_conflict(exc: IdempotencyConflict):
        return error_response(409, str(exc))

    @app.errorhandler(QueueFull)
    @app.errorhandler(NotReplicated)
    def unavailable(exc: QueueFull | NotReplicated):
        return error_response(503, str(exc), {"Retry-After": str(exc.retry_after_s)})

    @app.errorhandler(UnknownJob)
    def unknown_job(exc: UnknownJob):
        return error_response(404, str(exc))

    @app.errorhandler(NoSuchJobError)
    def no_such_job(exc: NoSuchJobError):
        return error_response(404, "no such job (unknown, malformed, or its result has expired)")

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def redis_down(exc: Exception):
        log.warning("Redis unavailable during %s %s: %s", request.method, request.path, exc)
        return error_response(
            503, "the job store (Redis) is unavailable; try again shortly", {"Retry-After": "5"}
        )

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal error; it has been logged")
