"""What a browser's own event stream sends: every row of the jobs and groups its session started.

One stream carries all of a browser's rows (`GET /events`, `web/browser_events.py`), so a page
with many rows, or a browser with many tabs sharing one stream, stays under the browser's six
connections per host. The stream's one inbox (`web/events.py`) watches the owner's channel of new
rows (`jobs.owned`) and every job of its rows; a row started later is added when announced.

Frames; at each connection every row first comes as `row`, with its URLs and current payload:
    event: row    {"kind": "job" | "group", "id", ...its URLs, "payload"[, "jobs"]}
    event: job    a job row's Status payload
    event: group  a group row's GroupStatus payload
    event: log    {"job", "id", "at", "level", "message"}, the line's id as the event id

Resume: log line ids are Redis stream ids, all taken from the one Redis clock, so the last line
a browser saw (`Last-Event-ID`) marks a moment: a reconnecting stream sends every row and each
job's lines from that millisecond on (the lines of that very millisecond again; the page ignores
a line it has). A fresh stream sends the lines of the jobs not ended yet; an ended row's log is
read from its log URL.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from rq.exceptions import NoSuchGroupError, NoSuchJobError

from jobs.contract import PENDING, is_terminal, to_group_payload
from jobs.groups import member_ids, member_payloads
from jobs.joblog import FIRST_ID, BadLogId, parse_id
from jobs.owned import GROUP, JOB
from web import sse
from web.events import LINE_MOVED, RESYNC, Fanout, Inbox, LogLine, RowAdded
from web.relay import REREAD, RETRY_MS, UNREACHABLE, LogCursor, inbox_items, is_stale, reread

log = logging.getLogger(__name__)

ROW_EVENT = "row"
# The largest sequence a line id may name (19 digits, `jobs.joblog.ID_PATTERN`).
_LARGEST_SEQUENCE = 10**19 - 1

# (kind, id) of each row a browser's session started, oldest first.
Listing = Callable[[], list[tuple[str, str]]]
# The `row` frame's data for a row: kind, id and current payload -> {"kind", "id", URLs, "payload"}.
Describe = Callable[[str, str, dict[str, Any]], dict[str, Any]]


def resume_point(last_event_id: str | None) -> str | None:
    """The log position a reconnecting stream resumes after: just before the last seen line's millisecond.

    None for a fresh stream (no id, or one that is not a line id).
    """
    try:
        moment, _ = parse_id(last_event_id or "")
    except BadLogId:
        return None
    return f"{moment - 1}-{_LARGEST_SEQUENCE}" if moment > 0 else FIRST_ID


@dataclass
class _JobRow:
    last: dict[str, Any]
    cursor: LogCursor


@dataclass
class _GroupRow:
    order: list[str]
    latest: dict[str, dict[str, Any]]
    last: dict[str, Any]


class BrowserStream:
    """One browser's rows on one stream: their last payloads and log positions; the frames of each change."""

    def __init__(
        self, fanout: Fanout, owner: str, describe: Describe, listing: Listing, resume_after: str | None
    ) -> None:
        """Watch the owner's channel of new rows (before any read, so no row falls in between)."""
        self.fanout = fanout
        self.describe = describe
        self.listing = listing
        self.resume_after = resume_after
        self.keys = {owner}
        self.inbox: Inbox = fanout.watch(owner)
        self.jobs: dict[str, _JobRow] = {}
        self.groups: dict[str, _GroupRow] = {}
        self.member_of: dict[str, str] = {}
        self.gone: set[str] = set()

    def open(self, remembered: list[tuple[str, str]]) -> list[str]:
        """The first frames: each row (the `remembered` ones, then those listed), with its log lines.

        Raises:
            redis.exceptions.ConnectionError, TimeoutError: Redis is unreachable.
        """
        frames = []
        for kind, row_id in [*remembered, *self.listing()]:
            frames += self.add(kind, row_id)
        return self._follow_line(frames)

    def add(self, kind: str, row_id: str) -> list[str]:
        """The frames that add a row (`row`, then its lines); none for a row known, or no longer held.

        Raises:
            redis.exceptions.ConnectionError, TimeoutError: Redis is unreachable.
        """
        if row_id in self.jobs or row_id in self.groups or row_id in self.gone:
            return []
        try:
            return self._add_job(row_id) if kind == JOB else self._add_group(row_id)
        except (NoSuchJobError, NoSuchGroupError):
            self.gone.add(row_id)
            return []

    def _add_job(self, job_id: str) -> list[str]:
        self._watch(job_id)
        payload = self.fanout.snapshot(job_id)
        self.jobs[job_id] = _JobRow(payload, LogCursor(self.resume_after or FIRST_ID))
        lines = self._lines(job_id) if self.resume_after or not is_terminal(payload) else []
        return [self._row_frame(JOB, job_id, payload), *lines]

    def _add_group(self, group_id: str) -> list[str]:
        self._watch(*self.fanout.read(lambda connection: member_ids(connection, group_id)))
        members = self._members(group_id)
        order = [member["id"] for member in members]
        group = _GroupRow(
            order, {member["id"]: member for member in members}, to_group_payload(group_id, members)
        )
        self.groups[group_id] = group
        self.member_of.update(dict.fromkeys(order, group_id))
        return [self._row_frame(GROUP, group_id, group.last)]

    def _members(self, group_id: str) -> list[dict[str, Any]]:
        return self.fanout.read(lambda connection: member_payloads(connection, group_id))

    def _watch(self, *job_ids: str) -> None:
        self.keys.update(job_ids)
        self.fanout.add(self.inbox, *job_ids)

    def _row_frame(self, kind: str, row_id: str, payload: dict[str, Any]) -> str:
        return sse.format_event(self.describe(kind, row_id, payload), event=ROW_EVENT)

    def _lines(self, job_id: str) -> list[str]:
        """Frames of the job's lines after the last one sent (Redis errors propagate)."""
        cursor = self.jobs[job_id].cursor
        lines = self.fanout.log_lines(job_id, "-".join(map(str, cursor.position)))
        return [line.tagged_frame() for line in lines if cursor.advance(line)]

    def take(self, item: Any) -> list[str]:
        """The frames one inbox item makes: a new row, a log line, a payload, or a re-read of every row."""
        if isinstance(item, LogLine):
            row = self.jobs.get(item.job_id)
            return [item.tagged_frame()] if row is not None and row.cursor.advance(item) else []
        if isinstance(item, RowAdded):
            return self._follow_line(
                self._safely(f"row {item.row_id}", lambda: self.add(item.kind, item.row_id))
            )
        if item == LINE_MOVED:
            return self._follow_line(self._reread_waiting())
        if item in (RESYNC, REREAD):
            return self._follow_line(self.refresh(catch_up=item == RESYNC))
        payload, _ = item
        return self._follow_line(self._update(payload))

    def _reread_waiting(self) -> list[str]:
        """Every waiting job row read again: its place in line moved."""
        frames = []
        for job_id, row in list(self.jobs.items()):
            if row.last.get("state") == PENDING:
                fresh = reread(f"job {job_id}", partial(self.fanout.snapshot, job_id), row.last)
                frames += self._update(fresh) if fresh is not None else []
        return frames

    def _follow_line(self, frames: list[str]) -> list[str]:
        """`frames`, after making the stream hear of lines moving while one of its job rows waits."""
        if any(row.last.get("state") == PENDING for row in self.jobs.values()):
            self.fanout.watch_line(self.inbox)
        else:
            self.fanout.unwatch_line(self.inbox)
        return frames

    def _update(self, payload: dict[str, Any]) -> list[str]:
        job_id = payload.get("id")
        row = self.jobs.get(job_id)
        if row is not None:
            if payload == row.last or is_terminal(row.last) or is_stale(payload, row.last):
                return []
            lines = self._safely(f"job {job_id}", lambda: self._lines(job_id)) if is_terminal(payload) else []
            row.last = payload
            return [*lines, sse.format_event(payload, event=JOB)]
        group_id = self.member_of.get(job_id)
        if group_id is None:
            return []
        group = self.groups[group_id]
        earlier = group.latest.get(job_id)
        if earlier is None or is_terminal(earlier) or is_stale(payload, earlier):
            return []
        group.latest[job_id] = payload
        return self._group_frames(group_id)

    def _group_frames(self, group_id: str) -> list[str]:
        group = self.groups[group_id]
        payload = to_group_payload(
            group_id, [group.latest[job_id] for job_id in group.order if job_id in group.latest]
        )
        if payload == group.last:
            return []
        group.last = payload
        return [sse.format_event(payload, event=GROUP)]

    def refresh(self, catch_up: bool) -> list[str]:
        """Rows announced unheard, then every running row read again (and, with `catch_up`, its lines).

        Pub/sub is a hint, Redis the truth: after a resubscription (RESYNC) or on silence.
        """
        frames = self._safely("rows", lambda: [frame for row in self.listing() for frame in self.add(*row)])
        for job_id, row in list(self.jobs.items()):
            if is_terminal(row.last):
                continue
            if catch_up:
                frames += self._safely(f"job {job_id}", partial(self._lines, job_id))
            fresh = reread(f"job {job_id}", partial(self.fanout.snapshot, job_id), row.last)
            if fresh is None:
                del self.jobs[job_id]
                continue
            frames += self._update(fresh)
        for group_id, group in list(self.groups.items()):
            if is_terminal(group.last):
                continue
            members = partial(self._members, group_id)
            fresh = reread(f"group {group_id}", members, list(group.latest.values()))
            if fresh is None:
                del self.groups[group_id]
                continue
            group.latest = {member["id"]: member for member in fresh}
            frames += self._group_frames(group_id)
        return frames

    def _safely(self, what: str, frames: Callable[[], list[str]]) -> list[str]:
        """`frames()`, or none while Redis is unreachable (the next re-read tries again)."""
        try:
            return frames()
        except UNREACHABLE as exc:
            log.warning("browser stream: Redis unavailable reading %s (%s)", what, exc)
            return []

    def close(self) -> None:
        """Unregister the stream's inbox everywhere it watches (twice is harmless)."""
        self.fanout.unwatch_line(self.inbox)
        self.fanout.unwatch(list(self.keys), self.inbox)


def relay_browser(
    stream: BrowserStream, first: list[str], heartbeat_s: float, max_age_s: float
) -> Iterator[str]:
    """Yield SSE frames: `first` (from `stream.open`), then each change, until `max_age_s` (the browser
    reconnects with the last line's id); a heartbeat and a re-read of every row on silence."""
    try:
        yield sse.with_retry(sse.comment("rows"), RETRY_MS)
        yield from first
        for item in inbox_items(stream.inbox, heartbeat_s, max_age_s, ended=lambda: False):
            if item == REREAD:
                yield sse.heartbeat()
            yield from stream.take(item)
    finally:
        stream.close()
