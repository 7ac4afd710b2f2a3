"""A browser's own event stream: every row of the jobs and groups its session started, on one connection.

`GET /events` answers only the browser whose session cookie carries an identity (`web.auth`),
with the rows of that identity: those it started in any tab (`jobs.owned`, including rows
started while the stream is open) and those its cookie lists. The frames are
`web/browser_relay.py`'s. A page reads it across origins (the streams listener is another port)
only when it is the app's own page, with credentials: a page on any other port of the host would
get the same cookie sent (cookies are not isolated by port), so any other `Origin` is refused.
"""

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request

from jobs.joblog import parse_id
from jobs.owned import GROUP, JOB, started_rows
from web import sse
from web.auth import REMEMBERED_GROUPS, REMEMBERED_JOBS, browser_owner
from web.browser_relay import BrowserStream, Describe, relay_browser, resume_point
from web.errors import error_response
from web.events import get_fanout
from web.openapi_doc import doc
from web.pages import group_row, job_row
from web.shared_routes import last_event_id, origin_on_port, redirect_to_streams_listener

bp = Blueprint("browser_events", __name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}


@bp.get("/events")
@doc(
    {
        200: {
            "description": "an event stream of this browser's rows",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        307: {"description": "streams are served by another listener (EVENTS_PORT): follow Location"},
        400: "BadRequest",
        403: "Forbidden",
        503: "Unavailable",
    },
    parameters=("LastEventId", "LastEventIdQuery"),
    description="For the page: `event: row` gives a row's URLs and payload, `event: job` and "
    "`event: group` its later payloads, `event: log` a job's log line with its `job` id. Needs "
    "the browser's session cookie; after `Last-Event-ID` every row and the lines from that moment on.",
)
def events():
    """This browser's rows now, then each change of one of them and each row it starts, until SSE_MAX_AGE_S.

    403 JSON without a session identity, or for a page of another origin; 400 JSON for a malformed
    `Last-Event-ID`.
    """
    parse_id(last_event_id())  # input is checked before any redirect: a malformed one is a 400
    if (elsewhere := redirect_to_streams_listener()) is not None:
        return elsewhere
    cors = own_origin_headers()
    if cors is None:
        return error_response(403, "only this app's own pages may read a browser's stream")
    owner = browser_owner()
    if owner is None:
        return error_response(
            403, "this stream is a browser's own: load the page first (it sets the session)"
        )
    headers = {**sse.STREAM_HEADERS, **cors}
    if request.method == "HEAD":
        return Response(mimetype=sse.MEDIA_TYPE, headers=headers)
    fanout = get_fanout()
    last_seen = request.headers.get("Last-Event-ID") or request.args.get("lastEventId")

    def listing() -> list[tuple[str, str]]:
        return fanout.read(lambda connection: started_rows(connection, owner))

    stream = BrowserStream(fanout, owner, describer(), listing, resume_point(last_seen))
    remembered = [(JOB, job_id) for job_id in REMEMBERED_JOBS.ids()]
    remembered += [(GROUP, group_id) for group_id in REMEMBERED_GROUPS.ids()]
    try:
        first = stream.open(remembered)
    except Exception:
        stream.close()
        raise
    config = current_app.config
    body = relay_browser(stream, first, config["SSE_HEARTBEAT_S"], config["SSE_MAX_AGE_S"])
    response = Response(body, mimetype=sse.MEDIA_TYPE, headers=headers)
    # Also when the client leaves before the first frame (the generator never starts then).
    response.call_on_close(stream.close)
    return response


def describer() -> Describe:
    """What makes a `row` frame's data, also while the stream runs after this request: the row as the
    page draws it (`web.pages`) with its kind, its URLs built as for this request (host, listener)."""
    app, environ = current_app._get_current_object(), request.environ

    def describe(kind: str, row_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        with app.request_context(environ):
            row = job_row(row_id, payload) if kind == JOB else group_row(row_id, payload)
        return {"kind": kind, **row}

    return describe


def own_origin_headers() -> dict[str, str] | None:
    """CORS with credentials for a page of the app's own origin; {} when the request names no other
    origin; None for any other origin (refused).

    The app's own origins: this listener's, and the page listener's (PAGE_PORT) on the host the
    client used.
    """
    origin = request.headers.get("Origin")
    if origin is None or _same_origin(origin, request.host_url):
        return {"Vary": "Origin"} if origin else {}
    port = current_app.config["PAGE_PORT"]
    if port and _same_origin(origin, origin_on_port(port)):
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }
    return None


def _same_origin(first: str, second: str) -> bool:
    """Whether two URLs have the same scheme, host and port (a default port written or not)."""
    try:
        one, other = urlsplit(first), urlsplit(second)
        ports = [url.port or _DEFAULT_PORTS.get(url.scheme) for url in (one, other)]
    except ValueError:
        return False
    return (
        one.scheme == other.scheme
        and one.hostname == other.hostname
        and ports[0] == ports[1]
        and bool(one.hostname)
    )
