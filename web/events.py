"""The events fan-out: one job's contract payloads relayed to its open event streams.

The route, `GET /status/<id>/events`, is in `web/job_urls.py`; this module holds no routes.

One Redis subscriber per web process, not one per stream: a single listener (a thread, or a
greenlet under gunicorn's gevent worker, which patches threading) holds one pattern subscription
and hands each message to the local queues of the streams watching that job. A stream holds no
Redis connection while it waits; it borrows one from the pool only to re-read its job's snapshot.
"""

import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, current_app
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.exceptions import NoSuchJobError

from jobs.contract import PROGRESS, is_terminal
from jobs.keys import channel_for
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
# Put on every inbox when the listener (re)subscribes: messages published before were not relayed.
RESYNC = "resync"

_CHANNEL_PREFIX = channel_for("")

Inbox = queue.Queue


class Fanout:
    """One pattern subscription for the process, fanned out to the streams watching each job."""

    def __init__(self, connection: Redis, listen: bool = True) -> None:
        self.connection = connection
        # Without the listener (BACKGROUND_THREADS off) streams live on snapshot re-reads alone.
        self.listen = listen
        self._inboxes: dict[str, set[Inbox]] = {}
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._idle_since: float | None = None
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._snapshot_slots = threading.BoundedSemaphore(SNAPSHOT_SLOTS)

    def watch(self, job_id: str) -> Inbox:
        """Register a stream for a job and make sure the listener runs; returns the stream's inbox.

        It does not wait for the subscription (Redis may be down: the snapshot read must fail
        fast). An update published before the listener holds its subscription is not lost: each
        time the subscription starts, every registered stream gets RESYNC and re-reads.
        """
        inbox: Inbox = queue.Queue(maxsize=INBOX_LIMIT)
        with self._lock:
            self._inboxes.setdefault(job_id, set()).add(inbox)
            if self.listen and (self._listener is None or not self._listener.is_alive()):
                self._ready.clear()
                self._listener = threading.Thread(target=self._listen, name="sse-fanout", daemon=True)
                self._listener.start()
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
                pubsub.psubscribe(channel_for("*"))
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
            # Streams registered before this point may have missed updates: they re-read.
            self._deliver(None, RESYNC)
            self._ready.set()
        elif message["type"] == "pmessage":
            channel = _text(message["channel"])
            try:
                payload = json.loads(message["data"])
            except ValueError:
                log.warning("ignored a message that is not JSON on %s", channel)
                return
            # Encoded once here, not once per stream: a broadcast to thousands is mostly this send.
            frame = sse.format_event(payload).encode()
            self._deliver(channel.removeprefix(_CHANNEL_PREFIX), (payload, frame))

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
    app.extensions["events"] = Fanout(app.extensions["rq"]["redis"], listen=listen)


def get_fanout() -> Fanout:
    """The current app's fan-out."""
    return current_app.extensions["events"]


def relay(
    fanout: Fanout, job_id: str, inbox: Inbox, first: dict[str, Any], heartbeat_s: float, max_age_s: float
) -> Iterator[bytes]:
    """Yield SSE frames: `first`, then each new payload, a heartbeat and a snapshot re-read on silence.

    Ends after a terminal payload, after `max_age_s` (the browser reconnects and starts from a
    fresh snapshot), or when the job is gone or Redis is unreachable; unregisters in every case.
    """
    try:
        yield sse.format_event(first, retry_ms=RETRY_MS).encode()
        last = first
        deadline = time.monotonic() + max_age_s
        while not is_terminal(last) and (remaining := deadline - time.monotonic()) > 0:
            try:
                item = inbox.get(timeout=min(heartbeat_s, remaining))
            except queue.Empty:
                yield sse.heartbeat().encode()
                item = RESYNC
            if item is RESYNC:
                payload, frame = _reread(fanout, job_id), None
                if payload is None:
                    return
            else:
                payload, frame = item
            if payload == last or _is_stale(payload, last):
                continue
            yield frame or sse.format_event(payload).encode()
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
