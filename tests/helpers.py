"""Small helpers shared by the tests: waiting on conditions, never on the clock alone."""

import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout_s: float = 10.0, interval_s: float = 0.02) -> Any:
    """Re-check `predicate` until it returns something truthy; fail with its last value at the deadline."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = predicate()
        except Exception as exc:  # a server still starting raises; keep the error as the last value
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s} s; last value: {last!r}")
        time.sleep(interval_s)


def free_port() -> int:
    """A TCP port nobody listens on right now (check-then-bind: callers retry on a collision)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def read_sse_events(chunks: Iterator[bytes], count: int | None = None) -> list[dict]:
    """The JSON `data:` events of an event stream, read until `count` events, a terminal state, or its end.

    Comments (heartbeats) are skipped. The caller bounds the wait: a socket read timeout on a
    real stream, or the server's heartbeat interval on the Flask test client.
    """
    events: list[dict] = []
    buffer = ""
    for chunk in chunks:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            frame, buffer = buffer.split("\n\n", 1)
            data = [line[5:].lstrip(" ") for line in frame.split("\n") if line.startswith("data:")]
            if not data:
                continue
            events.append(json.loads("\n".join(data)))
            if len(events) == count or events[-1].get("state") in ("SUCCESS", "FAILURE"):
                return events
    return events
