"""The events fan-out: the payloads and log lines of jobs, handed to the streams watching them.

The routes are in `web/job_urls.py` and `web/group_urls.py`; what a stream sends is
`web/relay.py`'s. This module holds no routes.

One Redis subscriber per web process, not one per stream: a single listener (a thread, or a
greenlet under gunicorn's gevent worker, which patches threading) holds one subscription to the
patterns of the jobs' payload channels and their log channels, and hands each message to the local
queues (inboxes) of the streams watching that job; a group's stream watches each of its jobs
with one inbox. A stream holds no Redis connection while it waits; it borrows one from the pool
only to re-read its snapshot or a job's log, at most SNAPSHOT_SLOTS at once.

Log lines become `event: log` frames whose `id:` is the line's stream id (`LogLine`).

A third pattern carries each queue's "line moved" (a job started, ended or was canceled): one
message per queue, not one per waiting job; the streams of waiting jobs (`watch_line`) get
LINE_MOVED and re-read their place in line, so no stream polls Redis for it.

A fourth carries the announcements of rows a browser starts (`jobs.owned`): a browser's own
stream (`web/browser_relay.py`) watches its owner's channel beside its jobs (`RowAdded`).
"""

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobs.joblog import PAGE_LINES, lines_after, parse_id
from jobs.keys import channel_for, line_channel, log_channel_for, rows_channel
from jobs.owned import parse_announcement
from jobs.snapshot import snapshot
from web import sse

log = logging.getLogger(__name__)

# Snapshot reads in flight at once in one process: hundreds of streams opening or heartbeating
# together must not each take a pooled connection (redis-py 8 caps a pool at 100, then raises).
SNAPSHOT_SLOTS = 8
# The listener lets its connection go after this long without any open stream.
LISTENER_LINGER_S = 30.0
# How often the idle listener wakes up to check whether it should stop.
LISTEN_POLL_S = 1.0
RECONNECT_DELAY_S = 1.0
# Updates waiting for one stream; past this its client is not reading and gets a fresh snapshot.
INBOX_LIMIT = 100
# Put on every inbox when the listener (re)subscribes: messages published before were not relayed.
RESYNC = "resync"
LOG_EVENT = "log"

# Put on the inbox of each stream of a waiting job when any queue's line moved (`jobs.channel`).
LINE_MOVED = "line-moved"

_CHANNEL_PREFIX = channel_for("")
_LOG_CHANNEL_PREFIX = log_channel_for("")
_LINE_CHANNEL_PREFIX = line_channel("")
_ROWS_CHANNEL_PREFIX = rows_channel("")
PATTERNS = (channel_for("*"), log_channel_for("*"), line_channel("*"), rows_channel("*"))

Inbox = queue.Queue
T = TypeVar("T")


@dataclass(frozen=True)
class LogLine:
    """One log line on its way to a stream: its job, its position in the job's log, and its frame."""

    position: tuple[int, int]
    frame: str
    job_id: str = ""
    line: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, line: dict[str, Any], job_id: str = "") -> "LogLine":
        """The line as an `event: log` frame with the line's id as the event id."""
        ordered = {key: line[key] for key in ("id", "at", "level", "message")}
        frame = sse.format_event(ordered, event=LOG_EVENT, event_id=line["id"])
        return cls(parse_id(line["id"]), frame, job_id, tuple(ordered.items()))

    def tagged_frame(self) -> str:
        """The line's frame with its job's id first (`"job"`), for a stream that carries several jobs."""
        line = dict(self.line)
        return sse.format_event({"job": self.job_id, **line}, event=LOG_EVENT, event_id=line["id"])


@dataclass(frozen=True)
class RowAdded:
    """A browser started a job or a group: its stream adds the row."""

    kind: str
    row_id: str


class Fanout:
    """One pattern subscription for the process, fanned out to the streams watching each job."""

    def __init__(self, connection: Redis, listen: bool = True) -> None:
        self.connection = connection
        # Without the listener (BACKGROUND_THREADS off) streams live on snapshot re-reads alone.
        self.listen = listen
        self._inboxes: dict[str, set[Inbox]] = {}
        # The inboxes of streams of waiting jobs: each hears of every line moved (`watch_line`).
        self._line_inboxes: set[Inbox] = set()
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._idle_since: float | None = None
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._snapshot_slots = threading.BoundedSemaphore(SNAPSHOT_SLOTS)

    def watch(self, *job_ids: str) -> Inbox:
        """Register a stream for its jobs (one, or a group's) and make sure the listener runs;
        returns the stream's inbox, where every message about any of them arrives.

        It does not wait for the subscription (Redis may be down: the snapshot read must fail
        fast). An update published before the listener holds its subscription is not lost: each
        time the subscription starts, every registered stream gets RESYNC and re-reads.
        """
        inbox: Inbox = queue.Queue(maxsize=INBOX_LIMIT)
        with self._lock:
            for job_id in job_ids:
                self._inboxes.setdefault(job_id, set()).add(inbox)
            if self.listen and (self._listener is None or not self._listener.is_alive()):
                self._ready.clear()
                self._listener = threading.Thread(target=self._listen, name="sse-fanout", daemon=True)
                self._listener.start()
        return inbox

    def add(self, inbox: Inbox, *keys: str) -> None:
        """Register a stream's inbox for more jobs, or for an owner's row announcements (`jobs.owned`)."""
        with self._lock:
            for key in keys:
                self._inboxes.setdefault(key, set()).add(inbox)

    def unwatch(self, job_ids: str | Iterable[str], inbox: Inbox) -> None:
        """Forget a stream's inbox, for its job (or each of its jobs)."""
        with self._lock:
            for job_id in [job_ids] if isinstance(job_ids, str) else job_ids:
                inboxes = self._inboxes.get(job_id)
                if inboxes is not None:
                    inboxes.discard(inbox)
                    if not inboxes:
                        del self._inboxes[job_id]

    def watch_line(self, inbox: Inbox) -> None:
        """Have a stream's inbox also get LINE_MOVED whenever any queue's line moves (its job waits)."""
        with self._lock:
            self._line_inboxes.add(inbox)

    def unwatch_line(self, inbox: Inbox) -> None:
        """Stop telling the inbox of lines moving (its job no longer waits, or the stream ended)."""
        with self._lock:
            self._line_inboxes.discard(inbox)

    def streams(self) -> int:
        """How many stream registrations this process holds (a group's stream has one per job)."""
        with self._lock:
            return sum(len(inboxes) for inboxes in self._inboxes.values())

    def is_listening(self) -> bool:
        """Whether the listener holds its subscription now."""
        return self._ready.is_set()

    def snapshot(self, job_id: str) -> dict[str, Any]:
        """The job's payload as Redis holds it, with at most SNAPSHOT_SLOTS reads at once.

        Raises:
            NoSuchJobError: the id is malformed, unknown, or its job has expired.
        """
        return self.read(lambda connection: snapshot(job_id, connection))

    def read(self, reader: Callable[[Redis], T]) -> T:
        """`reader(connection)`, with at most SNAPSHOT_SLOTS such reads at once in this process."""
        with self._snapshot_slots:
            return reader(self.connection)

    def log_lines(self, job_id: str, after: str) -> list[LogLine]:
        """Every line of the job's log after the line id `after`, oldest first (paged reads)."""
        lines: list[LogLine] = []
        while True:
            page = self.read(lambda connection, after=after: lines_after(connection, job_id, after))
            lines += [LogLine.of(line, job_id) for line in page]
            if len(page) < PAGE_LINES:
                return lines
            after = page[-1]["id"]

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the listener and let its connection go (tests; a web process just exits)."""
        self._closing.set()
        listener = self._listener
        if listener is not None:
            listener.join(timeout_s)

    def _listen(self) -> None:
        while not self._closing.is_set():
            pubsub = self.connection.pubsub()
            try:
                pubsub.psubscribe(*PATTERNS)
                while not self._closing.is_set():
                    message = pubsub.get_message(timeout=LISTEN_POLL_S)
                    if message is not None:
                        self._handle(message)
                    if self._lets_go():
                        return
            except (RedisConnectionError, RedisTimeoutError) as exc:
                self._ready.clear()
                log.warning("event listener lost Redis (%s); resubscribing in %.0f s", exc, RECONNECT_DELAY_S)
                self._closing.wait(RECONNECT_DELAY_S)
                if self._lets_go():
                    return
            finally:
                pubsub.close()
        with self._lock:
            self._listener = None
            self._ready.clear()

    def _lets_go(self) -> bool:
        """Whether the listener should stop: no stream for LISTENER_LINGER_S (decided under the lock)."""
        with self._lock:
            now = time.monotonic()
            if self._inboxes or self._idle_since is None:
                self._idle_since = None if self._inboxes else now
                return False
            if now - self._idle_since < LISTENER_LINGER_S:
                return False
            self._listener = None
            self._idle_since = None
            self._ready.clear()
            return True

    def _handle(self, message: dict[str, Any]) -> None:
        if message["type"] == "psubscribe":
            if message["data"] < len(PATTERNS):
                return  # ready once every pattern is subscribed
            # Streams registered before this point may have missed updates: they re-read.
            self._deliver(None, RESYNC)
            self._ready.set()
        elif message["type"] == "pmessage":
            channel = _text(message["channel"])
            if channel.startswith(_LINE_CHANNEL_PREFIX):
                with self._lock:
                    inboxes = list(self._line_inboxes)
                for inbox in inboxes:
                    _put(inbox, LINE_MOVED)
                return
            try:
                key, item = _item_of(channel, message["data"])
            except (ValueError, KeyError, TypeError):
                log.warning("ignored a malformed message on %s", channel)
                return
            self._deliver(key, item)

    def _deliver(self, job_id: str | None, item: Any) -> None:
        with self._lock:
            if job_id is None:
                inboxes = [inbox for group in self._inboxes.values() for inbox in group]
            else:
                inboxes = list(self._inboxes.get(job_id, ()))
        for inbox in inboxes:
            _put(inbox, item)


def init_app(app: Flask, listen: bool) -> None:
    """Give the app its fan-out, on the app's Redis client.

    Args:
        listen: whether the listener thread may run (it starts with the first stream); without
            it streams see changes only at their heartbeat's snapshot re-read.
    """
    app.extensions["events"] = Fanout(app.extensions["rq"]["redis"], listen=listen)


def get_fanout() -> Fanout:
    """The current app's fan-out."""
    return current_app.extensions["events"]


def _put(inbox: Inbox, item: Any) -> None:
    try:
        inbox.put_nowait(item)
    except queue.Full:
        # A client that stopped reading: drop its backlog, it re-reads the snapshot instead.
        _drain(inbox)
        inbox.put_nowait(RESYNC)


def _item_of(channel: str, data: bytes | str) -> tuple[str, Any]:
    """The inbox key (a job id, or an owner) and the item that a message on `channel` becomes.

    Raises:
        ValueError, KeyError, TypeError: a malformed message.
    """
    if channel.startswith(_ROWS_CHANNEL_PREFIX):
        return channel.removeprefix(_ROWS_CHANNEL_PREFIX), RowAdded(*parse_announcement(data))
    payload = json.loads(data)
    if channel.startswith(_LOG_CHANNEL_PREFIX):
        job_id = channel.removeprefix(_LOG_CHANNEL_PREFIX)
        return job_id, LogLine.of(payload, job_id)
    return channel.removeprefix(_CHANNEL_PREFIX), (payload, sse.format_event(payload))


def _drain(inbox: Inbox) -> None:
    try:
        while True:
            inbox.get_nowait()
    except queue.Empty:
        pass


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
