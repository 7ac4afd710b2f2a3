"""What one event stream sends: a job's frames (its log lines, then its payloads), or a group's.

The fan-out (`web/events.py`) puts every message about a stream's jobs in its inbox; the
generators here turn them into SSE frames (`web/sse.py`). Redis state is the truth and pub/sub a
hint: on silence a stream sends a heartbeat and re-reads its snapshot, and while its job waits it
re-reads it each time a queue's line moves (`web/events.py`); after a resync it also
reads the log lines it may have missed, and it reads them once more before a final payload, so
a job's stream sends each line once and the final payload last.
"""

import logging
import queue
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.exceptions import NoSuchGroupError, NoSuchJobError

from jobs.contract import PENDING, PROGRESS, is_terminal, to_group_payload
from jobs.groups import member_payloads
from jobs.joblog import FIRST_ID, parse_id
from web import sse
from web.events import LINE_MOVED, RESYNC, Fanout, Inbox, LogLine

log = logging.getLogger(__name__)

# How long a browser waits before reconnecting to a stream that ended or dropped.
RETRY_MS = 1000
# What a silent stream does at each heartbeat: re-read its snapshot (not a job's log).
REREAD = "reread"
# Errors of an unreachable Redis, which a stream rides out.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError)

T = TypeVar("T")


class LogCursor:
    """The position of the last log line a stream sent, so no line goes out twice."""

    def __init__(self, after: str = FIRST_ID) -> None:
        """Start after the line id `after` (a valid id: `jobs.joblog.parse_id`)."""
        self.position = parse_id(after)

    def advance(self, line: LogLine) -> bool:
        """Whether the line comes after the last one sent (and is now the last)."""
        if line.position <= self.position:
            return False
        self.position = line.position
        return True

    def read(self, fanout: Fanout, job_id: str) -> list[str]:
        """Frames of the lines in the job's log after the last sent, which they advance past.

        Raises:
            redis.exceptions.ConnectionError, TimeoutError: Redis is unreachable.
        """
        lines = fanout.log_lines(job_id, "-".join(map(str, self.position)))
        return [line.frame for line in lines if self.advance(line)]

    def catch_up(self, fanout: Fanout, job_id: str) -> list[str] | None:
        """`read`, or None when Redis is unreachable (the stream then ends)."""
        try:
            return self.read(fanout, job_id)
        except UNREACHABLE as exc:
            log.warning("job %s: Redis unavailable on a log read (%s)", job_id, exc)
            return None


def inbox_items(
    inbox: Inbox, heartbeat_s: float, max_age_s: float, ended: Callable[[], bool]
) -> Iterator[Any]:
    """The inbox's items until `ended()` or `max_age_s`; after `heartbeat_s` of silence, `REREAD`.

    The caller sends a heartbeat for each `REREAD`, then reads its snapshot again.
    """
    deadline = time.monotonic() + max_age_s
    while not ended() and (remaining := deadline - time.monotonic()) > 0:
        try:
            yield inbox.get(timeout=min(heartbeat_s, remaining))
        except queue.Empty:
            yield REREAD


def relay(
    fanout: Fanout,
    job_id: str,
    inbox: Inbox,
    first: dict[str, Any],
    cursor: LogCursor,
    replay: list[str],
    heartbeat_s: float,
    max_age_s: float,
) -> Iterator[str]:
    """Yield SSE frames: the `replay` log frames, `first`, then each new payload and line as it comes.

    On silence it sends a heartbeat and re-reads the snapshot. Ends after a terminal payload
    (the job's last lines before it), after `max_age_s` (the browser reconnects with the last
    line's id), or when the job is gone; rides out Redis being unreachable (a failover), re-reading
    at the next heartbeat or resubscription; unregisters in every case.
    """
    try:
        frames = [*replay, sse.format_event(first)]
        last = first
        _follow_line(fanout, inbox, last)
        yield sse.with_retry(frames[0], RETRY_MS)
        yield from frames[1:]
        for item in inbox_items(inbox, heartbeat_s, max_age_s, ended=lambda: is_terminal(last)):
            if item == REREAD:
                yield sse.heartbeat()
            if isinstance(item, LogLine):
                if cursor.advance(item):
                    yield item.frame
                continue
            if item == LINE_MOVED and last.get("state") != PENDING:
                continue  # queued before the payload that said its job started: no re-read
            if item == RESYNC and (missed := cursor.catch_up(fanout, job_id)) is not None:
                yield from missed
            if item in (RESYNC, REREAD, LINE_MOVED):
                payload, frame = reread(f"job {job_id}", lambda: fanout.snapshot(job_id), last), None
                if payload is None:
                    return
            else:
                payload, frame = item
            if payload == last or is_stale(payload, last):
                continue
            if is_terminal(payload):
                yield from cursor.catch_up(fanout, job_id) or ()
            last = payload
            _follow_line(fanout, inbox, last)
            yield frame or sse.format_event(payload)
    finally:
        fanout.unwatch_line(inbox)
        fanout.unwatch(job_id, inbox)


def _follow_line(fanout: Fanout, inbox: Inbox, payload: dict[str, Any]) -> None:
    """While its job waits in line, a stream hears of every line moved (and re-reads its place)."""
    if payload.get("state") == PENDING:
        fanout.watch_line(inbox)
    else:
        fanout.unwatch_line(inbox)


def reread(what: str, read: Callable[[], T], last: T) -> T | None:
    """`read()` now (a job's payload, a group's member payloads): `last` while Redis is unreachable,
    None when `what` ("job <id>", "group <id>") is gone."""
    try:
        return read()
    except (NoSuchJobError, NoSuchGroupError):
        log.info("%s expired while streamed; ending its stream", what)
        return None
    except UNREACHABLE as exc:
        log.warning("%s: Redis unavailable on re-read (%s); the stream waits", what, exc)
        return last


def is_stale(payload: dict[str, Any], last: dict[str, Any]) -> bool:
    """A progress update older than the one already sent (queued before the snapshot was read)."""
    if payload.get("state") != PROGRESS or last.get("state") != PROGRESS:
        return False
    return (payload.get("updated_at") or "") < (last.get("updated_at") or "")


def relay_group(
    fanout: Fanout,
    group_id: str,
    inbox: Inbox,
    members: list[dict[str, Any]],
    heartbeat_s: float,
    max_age_s: float,
) -> Iterator[str]:
    """Yield SSE frames of a group's payload: now, then at each change of one of its jobs, until it ends.

    `members` are the payloads of the group's jobs, in order, as read after `inbox` was
    registered for all of them; each job's update is folded in as it comes (no Redis read), and
    on silence the whole group is read again (while Redis is unreachable, at the next silence).
    """
    order = [member["id"] for member in members]

    def read_members() -> list[dict[str, Any]]:
        return fanout.read(lambda connection: member_payloads(connection, group_id))

    try:
        latest = {member["id"]: member for member in members}
        last = to_group_payload(group_id, members)
        yield sse.format_event(last, retry_ms=RETRY_MS)
        for item in inbox_items(inbox, heartbeat_s, max_age_s, ended=lambda: is_terminal(last)):
            if item == REREAD:
                yield sse.heartbeat()
            if isinstance(item, LogLine):
                continue
            if item in (RESYNC, REREAD):
                fresh = reread(f"group {group_id}", read_members, list(latest.values()))
                if fresh is None:
                    return
                latest = {member["id"]: member for member in fresh}
            else:
                payload, _ = item
                earlier = latest.get(payload["id"])
                if earlier is None or is_terminal(earlier) or is_stale(payload, earlier):
                    continue
                latest[payload["id"]] = payload
            group = to_group_payload(group_id, [latest[job_id] for job_id in order if job_id in latest])
            if group != last:
                yield sse.format_event(group)
                last = group
    finally:
        fanout.unwatch(order, inbox)
