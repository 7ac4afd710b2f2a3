"""What a job's URLs (`web/job_urls.py`) and a group's (`web/group_urls.py`) share: where their
event streams are served, and how a cancel answers and is documented.

Event streams may have a listener of their own (the Procfile's gevent `streams` line), apart from
the one that answers JSON: with `EVENTS_PORT` set, a process sends clients there (events URLs on
the host the client used, and a 307 for a stream asked of it). A stream answers CORS to pages of
its own host, which open it across ports.
"""

from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Response, current_app, redirect, request

from jobs.control import CancelOutcome, JobAlreadyEnded
from jobs.joblog import FIRST_ID, parse_id
from jobs.snapshot import JOB_ID_PATTERN
from web.errors import error_response
from web.openapi_doc import OPTIONAL_BEARER, answer, doc


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


def on_streams_listener(path: str) -> str:
    """An event stream's `path`, on the streams listener when EVENTS_PORT names one."""
    return (streams_origin() or "") + path


def refuse_malformed(id_: str, error: Exception) -> None:
    """Raise `error` (a 404 at the edge) for an id no job or group can have.

    A stream route calls it before `redirect_to_streams_listener`, so a malformed id gets this
    listener's 404, as documented, and not a 307 to the same refusal elsewhere.
    """
    if not JOB_ID_PATTERN.fullmatch(id_):
        raise error


def redirect_to_streams_listener() -> Response | None:
    """A 307 to the same stream on the streams listener, when EVENTS_PORT names one; else None."""
    if not current_app.config["EVENTS_PORT"]:
        return None
    return redirect(on_streams_listener(request.full_path.rstrip("?")), code=307)


def streams_origin() -> str | None:
    """The streams listener's origin on the host the client used, when EVENTS_PORT names one; else None."""
    port = current_app.config["EVENTS_PORT"]
    return origin_on_port(port) if port else None


def origin_on_port(port: int) -> str:
    """The origin of `port` on the host the client used (this request's scheme)."""
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


def last_event_id() -> str:
    """The log line a reconnecting client got last: its `Last-Event-ID` (an empty one is refused, as
    browsers never send one), else `?lastEventId=` (empty, like none: from the first line). A
    `?lastEventId=` beside the header is checked too.

    Raises:
        BadLogId: the query's line id is malformed (the header's is checked by its reader).
    """
    header = request.headers.get("Last-Event-ID")
    query = request.args.get("lastEventId")
    if header is not None and query:
        parse_id(query)
    return header if header is not None else query or FIRST_ID
