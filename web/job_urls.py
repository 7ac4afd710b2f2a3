"""One job's own URLs: status, event stream, log and cancel; and `job_urls()` that builds them.

What they share with a group's URLs (the streams listener, the cancel answer) is in
`web/shared_routes.py`.
"""

from flask import Blueprint, Response, current_app, request, url_for
from rq.exceptions import NoSuchJobError

from jobs.control import cancel_job
from jobs.joblog import read_page
from jobs.snapshot import snapshot
from web import sse
from web.auth import may_act_on
from web.events import get_fanout
from web.extensions import get_redis
from web.openapi_doc import answer, doc, event_stream
from web.relay import LogCursor, relay
from web.shared_routes import (
    cancel_answer,
    cancel_doc,
    cross_port_headers,
    last_event_id,
    on_streams_listener,
    redirect_to_streams_listener,
    refuse_malformed,
)

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
        200: event_stream("an event stream of Status payloads and log lines", "Status", log="LogLine"),
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
    # Input is checked before any redirect: a malformed id or line id is a 404 or 400 from here.
    refuse_malformed(job_id, NoSuchJobError(f"no such job: {job_id!r}"))
    cursor = LogCursor(last_event_id())
    if (elsewhere := redirect_to_streams_listener()) is not None:
        return elsewhere
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
