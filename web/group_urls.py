"""One group's own URLs: its status, its event stream and its cancel; and `group_urls()` that builds them."""

from flask import Blueprint, Response, current_app, request, url_for
from rq.exceptions import NoSuchGroupError

from jobs.control import owner_of
from jobs.groups import cancel_group, group_snapshot, member_ids, member_payloads
from web import sse
from web.auth import may_act_on
from web.events import get_fanout
from web.extensions import get_redis
from web.openapi_doc import answer, doc, event_stream
from web.relay import relay_group
from web.shared_routes import (
    cancel_answer,
    cancel_doc,
    cross_port_headers,
    on_streams_listener,
    redirect_to_streams_listener,
    refuse_malformed,
)

bp = Blueprint("group_urls", __name__)


@bp.get("/groups/<group_id>")
@doc({200: answer("the group's state now", "GroupStatus"), 404: "NotFound", 503: "Unavailable"})
def status(group_id: str):
    """The group's payload: its state, the sum of its jobs' fractions done, and each job's state."""
    return group_snapshot(get_redis(), group_id)


@bp.get("/groups/<group_id>/events")
@doc(
    {
        200: event_stream("an event stream of GroupStatus payloads", "GroupStatus"),
        307: {"description": "streams are served by another listener (EVENTS_PORT): follow Location"},
        404: "NotFound",
        503: "Unavailable",
    },
    description="Each `data:` line is one GroupStatus payload; comment lines are heartbeats.",
)
def events(group_id: str):
    """The group's payload now, then at every change of one of its jobs, until all have ended.

    With `EVENTS_PORT` set, a 307 to the streams listener instead.
    """
    refuse_malformed(group_id, NoSuchGroupError(f"no such group: {group_id!r}"))  # before any redirect
    if (elsewhere := redirect_to_streams_listener()) is not None:
        return elsewhere
    fanout = get_fanout()
    ids = fanout.read(lambda connection: member_ids(connection, group_id))
    if request.method == "HEAD":
        # The same answer as GET, with no stream registered (see job_urls.events).
        return Response(mimetype=sse.MEDIA_TYPE, headers=sse.STREAM_HEADERS)
    inbox = fanout.watch(*ids)  # before the read the stream starts from, so nothing falls between
    try:
        members = fanout.read(lambda connection: member_payloads(connection, group_id))
    except Exception:
        fanout.unwatch(ids, inbox)
        raise
    config = current_app.config
    timing = config["SSE_HEARTBEAT_S"], config["SSE_MAX_AGE_S"]
    body = relay_group(fanout, group_id, inbox, members, *timing)
    response = Response(body, mimetype=sse.MEDIA_TYPE, headers={**sse.STREAM_HEADERS, **cross_port_headers()})
    # Also when the client leaves before the first frame (the generator never starts then).
    response.call_on_close(lambda: fanout.unwatch(ids, inbox))
    return response


@bp.post("/groups/<group_id>/cancel")
@cancel_doc(
    "GroupStatus",
    ended="every job has ended now: the group's final payload",
    stopping="running jobs were asked to stop: the group's current payload",
)
def cancel(group_id: str):
    """Cancel the group's waiting jobs and stop its running ones (202 while stops are on their way).

    Only who started it may (its browser session or token), or a token with `cancel:any`: 403 otherwise.
    """
    return cancel_answer(lambda: cancel_group(get_redis(), group_id, allowed=may_cancel))


def may_cancel(jobs: list) -> bool:
    """Whether the caller may cancel every one of these jobs (as it may cancel one: `may_act_on`)."""
    return all(may_act_on(owner_of(job)) for job in jobs)


def group_urls(group_id: str) -> dict[str, str]:
    """Where a client reads, streams and cancels a group: the 202 answer's and the page's URLs."""
    return {
        "status_url": url_for("group_urls.status", group_id=group_id),
        "events_url": on_streams_listener(url_for("group_urls.events", group_id=group_id)),
        "cancel_url": url_for("group_urls.cancel", group_id=group_id),
    }
