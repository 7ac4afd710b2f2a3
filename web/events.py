"""The events fan-out: one job's contract payloads and log lines relayed to its open event streams.

The route, `GET /status/<id>/events`, is in `web/job_urls.py`; this module holds no routes.

One Redis subscriber per web process, not one per stream: a single listener (a thread, or a
greenlet under gunicorn's gevent worker, which patches threading) holds one subscription to two
patterns, the jobs' payload channels and their log channels, and hands each message to the local
queues of the streams watching that job. A stream holds no Redis connection while it waits; it
borrows one from the pool only to re-read its job's snapshot or its log.

Log lines are `event: log` frames whose `id:` is the line's stream id, so a browser that
reconnects sends it back as `Last-Event-ID` and gets the lines after it. Pub/sub is a hint for
them too: after a resubscription or an overflowing inbox, and before a final payload, the stream
reads the lines after the last one it sent from the job's log, so none is lost or sent twice.
"""

import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.exceptions import NoSuchJobError

from jobs.contract import PROGRESS, is_terminal
from jobs.joblog import FIRST_ID, PAGE_LINES, lines_after, parse_id
from jobs.keys import channel_for, log_channel_for
from jobs.snapshot import snapshot
from web import sse

log = logging.getLogger(__name__)

# How long a browser waits before reconnecting to a stream that ended or dropped.
RETRY_MS = 1000
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
# Put on every inbox when the listener resubscribes after losing Redis: messages were lost meanwhile.
RESYNC = "resync"
# What a silent stream does at each heartbeat: re-read its job's payload (not its log).
_REREAD = "reread"
LOG_EVENT = "log"

_CHANNEL_PREFIX = channel_for("")
_LOG_CHANNEL_PREFIX = log_channel_for("")
PATTERNS = (channel_for("*"), log_channel_for("*"))

Inbox = queue.Queue


@dataclass(frozen=True)
class LogLine:
    """One log line on its way to a stream: its position in the job's log, and its frame."""

    position: tuple[int, int]
    frame: str

    @classmethod
    def of(cls, line: dict[str, Any]) -> "LogLine":
        """The line as an `event: log` frame with the line's id as the event id."""
        ordered = {key: line[key] for key in ("id", "at", "level", "message")}
        return cls(parse_id(line["id"]), sse.format_event(ordered, event=LOG_EVENT, event_id=line["id"]))


class Fanout:
    """One pattern subscription for the process, fanned out to the streams watching each job."""

    def __init__(self, connection: Redis, ready_timeout_s: float, listen: bool = True) -> None:
        self.connection = connection
        self.ready_timeout_s = ready_timeout_s
        # Without the listener (BACKGROUND_THREADS off) streams live on snapshot re-reads alone.
        self.listen = listen
        self._inboxes: dict[str, set[Inbox]] = {}
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._idle_since: float | None = None
        self._resubscribing = False
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._snapshot_slots = threading.BoundedSemaphore(SNAPSHOT_SLOTS)

    def watch(self, job_id: str) -> Inbox:
        """Register a stream for a job, with the listener subscribed; returns the stream's inbox."""
        inbox: Inbox = queue.Queue(maxsize=INBOX_LIMIT)
        with self._lock:
            self._inboxes.setdefault(job_id, set()).add(inbox)
            if not self.listen:
                return inbox
            if self._listener is None or not self._listener.is_alive():
                self._ready.clear()
                self._listener = threading.Thread(target=self._listen, name="sse-fanout", daemon=True)
                self._listener.start()
        if not self._ready.wait(self.ready_timeout_s):
            log.warning("event listener not subscribed yet; job %s relies on snapshot re-reads", job_id)
        return inbox

    def unwatch(self, job_id: str, inbox: Inbox) -> None:
        """Forget a stream's inbox."""
        with self._lock:
            inboxes = self._inboxes.get(job_id)
            if inboxes is not None:
                inboxes.discard(inbox)
                if not inboxes:
                    del self._inboxes[job_id]

    def streams(self) -> int:
        """How many streams are registered in this process."""
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
        with self._snapshot_slots:
            return snapshot(job_id, self.connection)

    def log_lines(self, job_id: str, after: str) -> list[LogLine]:
        """Every line of the job's log after the line id `after`, oldest first (paged reads)."""
        lines: list[LogLine] = []
        while True:
            with self._snapshot_slots:
                page = lines_after(self.connection, job_id, after)
            lines += [LogLine.of(line) for line in page]
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
                self._resubscribing = True
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
            self._ready.set()
            if self._resubscribing:
                self._resubscribing = False
                self._deliver(None, RESYNC)
        elif message["type"] == "pmessage":
            channel = _text(message["channel"])
            try:
                data = json.loads(message["data"])
                if channel.startswith(_LOG_CHANNEL_PREFIX):
                    self._deliver(channel.removeprefix(_LOG_CHANNEL_PREFIX), LogLine.of(data))
                    return
            except (ValueError, KeyError, TypeError):
                log.warning("ignored a malformed message on %s", channel)
                return
            self._deliver(channel.removeprefix(_CHANNEL_PREFIX), (data, sse.format_event(data)))

    def _deliver(self, job_id: str | None, item: Any) -> None:
        with self._lock:
            if job_id is None:
                inboxes = [inbox for group in self._inboxes.values() for inbox in group]
            else:
                inboxes = list(self._inboxes.get(job_id, ()))
        for inbox in inboxes:
            try:
                inbox.put_nowait(item)
            except queue.Full:
                # A client that stopped reading: drop its backlog, it re-reads the snapshot instead.
                _drain(inbox)
                inbox.put_nowait(RESYNC)


def init_app(app: Flask, listen: bool) -> None:
    """Give the app its fan-out, on the app's Redis client.

    Args:
        listen: whether the listener thread may run (it starts with the first stream); without
            it streams see changes only at their heartbeat's snapshot re-read.
    """
    redis = app.extensions["rq"]["redis"]
    timeout_s = min(app.config["REDIS_SOCKET_TIMEOUT_S"], 2.0)
    app.extensions["events"] = Fanout(redis, ready_timeout_s=timeout_s, listen=listen)


def get_fanout() -> Fanout:
    """The current app's fan-out."""
    return current_app.extensions["events"]


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
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("job %s: Redis unavailable on a log read (%s)", job_id, exc)
            return None


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
    line's id), or when the job is gone or Redis is unreachable; unregisters in every case.
    """
    try:
        frames = [*replay, sse.format_event(first)]
        yield sse.with_retry(frames[0], RETRY_MS)
        yield from frames[1:]
        last = first
        deadline = time.monotonic() + max_age_s
        while not is_terminal(last) and (remaining := deadline - time.monotonic()) > 0:
            try:
                item = inbox.get(timeout=min(heartbeat_s, remaining))
            except queue.Empty:
                yield sse.heartbeat()
                item = _REREAD
            if isinstance(item, LogLine):
                if cursor.advance(item):
                    yield item.frame
                continue
            if item == RESYNC and (missed := cursor.catch_up(fanout, job_id)) is not None:
                yield from missed
            if item in (RESYNC, _REREAD):
                payload, frame = _reread(fanout, job_id), None
                if payload is None:
                    return
            else:
                payload, frame = item
            if payload == last or _is_stale(payload, last):
                continue
            if is_terminal(payload):
                yield from cursor.catch_up(fanout, job_id) or ()
            yield frame or sse.format_event(payload)
            last = payload
    finally:
        fanout.unwatch(job_id, inbox)


def _reread(fanout: Fanout, job_id: str) -> dict[str, Any] | None:
    try:
        return fanout.snapshot(job_id)
    except NoSuchJobError:
        log.info("job %s expired while streamed; ending its stream", job_id)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        log.warning("job %s: Redis unavailable on re-read (%s); ending its stream", job_id, exc)
    return None


def _is_stale(payload: dict[str, Any], last: dict[str, Any]) -> bool:
    """A progress update older than the one already sent (queued before the snapshot was read)."""
    if payload.get("state") != PROGRESS or last.get("state") != PROGRESS:
        return False
    return (payload.get("updated_at") or "") < (last.get("updated_at") or "")


def _drain(inbox: Inbox) -> None:
    try:
        while True:
            inbox.get_nowait()
    except queue.Empty:
        pass


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
