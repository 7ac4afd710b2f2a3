"""HTTP clients for the benchmark: a closed-loop load generator and a raw event-stream reader.

The load generator is plain asyncio on raw sockets (HTTP/1.1, keep-alive when the server
allows it, a new connection when it answers `Connection: close`, as gunicorn's sync workers do),
so both stacks are driven by the same client with the same per-request cost.
"""

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from support.sse import EventParser


@dataclass
class LoadResult:
    """What one load run saw."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    statuses: dict[int, int] = field(default_factory=dict)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of `values` (share in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def _one_connection(host, port, request, deadline, warm_until, latencies, statuses, errors):
    reader = writer = None
    while time.perf_counter() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
            await reader.readexactly(int(headers.get("content-length", "0")))
            finished = time.perf_counter()
            if started >= warm_until:
                latencies.append(finished - started)
                statuses[status] = statuses.get(status, 0) + 1
            if headers.get("connection", "").lower() == "close":
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            errors[0] += 1
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


async def _drive(url: str, method: str, connections: int, duration_s: float, warmup_s: float):
    parts = urlsplit(url)
    request = (
        f"{method} {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = [0]
    start = time.perf_counter()
    warm_until = start + warmup_s
    deadline = warm_until + duration_s
    await asyncio.gather(
        *(
            _one_connection(
                parts.hostname, parts.port, request, deadline, warm_until, latencies, statuses, errors
            )
            for _ in range(connections)
        )
    )
    return latencies, statuses, errors[0]


def load(url: str, method: str = "GET", connections: int = 64, duration_s: float = 3.0) -> LoadResult:
    """Keep `connections` requests in flight for `duration_s` (after a short warm-up)."""
    latencies, statuses, errors = asyncio.run(_drive(url, method, connections, duration_s, 0.5))
    return LoadResult(
        requests_per_s=round(len(latencies) / duration_s, 1),
        p50_ms=round(percentile(latencies, 0.50) * 1000, 2),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 2),
        errors=errors,
        statuses=statuses,
    )


class EventStream:
    """One `text/event-stream` response read on a raw socket (HTTP/1.0, so never chunked).

    `on_event(data, received_at)` is called from a reader thread with each status event's parsed JSON
    `data` and the wall-clock time it arrived.
    """

    def __init__(self, url: str, on_event: Callable[[dict, float], None] | None = None) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        self.sock.sendall(f"GET {parts.path} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode())
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("stream closed before its headers")
            buffer += chunk
        head, _, self._rest = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.content_type = next(
            (line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("content-type:")), ""
        )
        self.on_event = on_event
        self.thread = None
        if on_event is not None:
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()

    def _read(self) -> None:
        parser = EventParser()
        chunk = self._rest
        self.sock.settimeout(60)
        try:
            while True:
                for event in parser.feed(chunk):
                    if event.event is None:  # a status payload (`event: log` lines are not)
                        self.on_event(event.json(), time.time())
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
        except (OSError, ValueError):
            return

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
