"""One job's own URLs: status, event stream, log and cancel; and `job_urls()` that builds them.

Event streams may have a listener of their own (the Procfile's gevent `streams` line), apart from
the one that answers JSON: with `EVENTS_PORT` set, a process sends clients there (events URLs on
the host the client used, and a 307 for a stream asked of it). A stream answers CORS to pages of
its own host, which open it across ports.
"""

from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, redirect, request, url_for

from jobs.control import CancelOutcome, JobAlreadyEnded, cancel_job
from jobs.joblog import FIRST_ID, read_page
from jobs.snapshot import snapshot
from web import sse
from web.auth import may_act_on
from web.errors import error_response
from web.events import get_fanout
from web.extensions import get_redis
from web.openapi_doc import OPTIONAL_BEARER, answer, doc
from web.relay import LogCursor, relay

bp = Blueprint("job_urls", __name__)


@bp.get("/status/<job_id>")
@doc(
    {
        200: answer("the job's state now", "Status"),
        404: "NotFound",
        503: "Unavailable",
    }
)
def status(job_id: str):
    """The job's contract payload; 404 JSON for an unknown, expired or malformed id."""
    return snapshot(job_id, get_redis())


@bp.get("/status/<job_id>/events")
@doc(
    {
        200: {
            "description": "an event stream of Status payloads and log lines",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        307: {"description": "streams are served by another listener (EVENTS_PORT): follow Location"},
        400: "BadRequest",
        404: "NotFound",
        503: "Unavailable",
    },
    parameters=("LastEventId", "LastEventIdQuery"),
    description="Unnamed events carry one Status payload each; `event: log` events carry one LogLine, "
    "with the line's id as the event id; comment lines are heartbeats. The log lines after "
    "`Last-Event-ID` (all of them without it) come first, then the Status payload.",
)
def events(job_id: str):
    """The job's log lines and payload now, then each as it comes, until the end; 404 JSON if unknown.

    A reconnecting client's `Last-Event-ID` (or `?lastEventId=`) is the last log line it got;
    the lines after it are sent again. With `EVENTS_PORT` set, a 307 to the streams listener instead.
    """
    if (elsewhere := redirect_to_streams_listener()) is not None:
        return elsewhere
    cursor = LogCursor(request.headers.get("Last-Event-ID") or request.args.get("lastEventId") or FIRST_ID)
    fanout = get_fanout()
    if request.method == "HEAD":
        # The same answer as GET, with no stream registered: werkzeug closes a body it never
        # started, so the generator's `finally` would never unregister one.
        fanout.snapshot(job_id)
        return Response(mimetype=sse.MEDIA_TYPE, headers=sse.STREAM_HEADERS)
    inbox = fanout.watch(job_id)  # before the reads, so nothing published in between is lost
    try:
        first = fanout.snapshot(job_id)
        replay = cursor.read(fanout, job_id)
    except Exception:
        fanout.unwatch(job_id, inbox)
        raise
    config = current_app.config
    timing = config["SSE_HEARTBEAT_S"], config["SSE_MAX_AGE_S"]
    body = relay(fanout, job_id, inbox, first, cursor, replay, *timing)
    response = Response(body, mimetype=sse.MEDIA_TYPE, headers={**sse.STREAM_HEADERS, **cross_port_headers()})
    # Also when the client leaves before the first frame (the generator never starts then).
    response.call_on_close(lambda: fanout.unwatch(job_id, inbox))
    return response


@bp.get("/status/<job_id>/logs")
@doc(
    {
        200: answer("up to 1,000 lines, oldest first", "LogPage"),
        400: "BadRequest",
        404: "NotFound",
        503: "Unavailable",
    },
    parameters=("LogAfter",),
)
def logs(job_id: str):
    """The job's log lines after `?after=<line id>` (from the start without it), and the `next` position."""
    return read_page(get_redis(), job_id, request.args.get("after"))


def cancel_doc(schema: str, *, ended: str, stopping: str):
    """The `@doc` of a cancel route, a job's or a group's: 200 `ended`, 202 `stopping`, both `schema`."""
    return doc(
        {
            200: answer(ended, schema),
            202: answer(stopping, schema),
            401: "Unauthorized",
            403: "Forbidden",
            404: "NotFound",
            409: "Conflict",
            415: "UnsupportedMediaType",
            503: "Unavailable",
        },
        security=OPTIONAL_BEARER,
    )


def cancel_answer(cancel: Callable[[], CancelOutcome]):
    """A cancel route's answer: 200 if all has ended now, 202 while stops are under way; 409 if it had."""
    try:
        outcome = cancel()
    except JobAlreadyEnded as exc:
        return error_response(409, str(exc))
    return outcome.payload, 200 if outcome.done else 202


@bp.post("/status/<job_id>/cancel")
@cancel_doc(
    "Status",
    ended="canceled while waiting: the job's final payload",
    stopping="running: its worker was asked to stop; the job's current payload",
)
def cancel(job_id: str):
    """Cancel a waiting job (200) or ask its worker to stop a running one (202); 409 JSON if it has ended.

    Only who started it may (its browser session or token), or a token with `cancel:any`: 403 otherwise.
    """
    return cancel_answer(lambda: cancel_job(get_redis(), job_id, allowed=may_act_on))


def job_urls(job_id: str) -> dict[str, str]:
    """Where a client reads, streams, reads the log of and cancels a job: the 202 answer's and page's URLs."""
    return {
        "status_url": url_for("job_urls.status", job_id=job_id),
        "events_url": events_url(job_id),
        "logs_url": url_for("job_urls.logs", job_id=job_id),
        "cancel_url": url_for("job_urls.cancel", job_id=job_id),
    }


def events_url(job_id: str) -> str:
    """The job's event stream: a path on this process, or the streams listener's URL on the client's host."""
    return on_streams_listener(url_for("job_urls.events", job_id=job_id))


def on_streams_listener(path: str) -> str:
    """An event stream's `path`, on the streams listener when EVENTS_PORT names one."""
    return (streams_origin() or "") + path


def redirect_to_streams_listener() -> Response | None:
    """A 307 to the same stream on the streams listener, when EVENTS_PORT names one; else None."""
    if not current_app.config["EVENTS_PORT"]:
        return None
    return redirect(on_streams_listener(request.full_path.rstrip("?")), code=307)


def streams_origin() -> str | None:
    """The streams listener's origin on the host the client used, when EVENTS_PORT names one; else None."""
    port = current_app.config["EVENTS_PORT"]
    if not port:
        return None
    host = request.host
    if ":" in host and not host.endswith("]"):  # drop the port; an IPv6 address keeps its brackets
        host = host.rsplit(":", 1)[0]
    return f"{request.scheme}://{host}:{port}"


def cross_port_headers() -> dict[str, str]:
    """CORS for a page of this same host (another port): its EventSource reads the stream, no cookie sent."""
    origin = request.headers.get("Origin")
    if not origin:
        return {}
    if urlsplit(origin).hostname != urlsplit(request.host_url).hostname:
        return {"Vary": "Origin"}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
