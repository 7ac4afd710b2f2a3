"""Event-stream clients: thousands in one process (asyncio over raw sockets), or one on a thread.

Each of the many clients sends `GET <events_url>` over HTTP/1.1 like a browser's EventSource and records
every read with its wall-clock time; frames are parsed after the run, so one client's
bookkeeping never delays another's read. A frame's arrival time is that of the read that
completed it. Connections are opened at a steady pace, each with its own deadline, so a server
that stops accepting shows as failures instead of stalling the opener.
"""

import asyncio
import resource
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from support.sse import EventParser

END_OF_BODY = b"\r\n0\r\n\r\n"  # the last chunk of a chunked response


def raise_open_files(wanted: int) -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to `wanted` (the hard one too when allowed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError):  # not privileged: the hard limit is the ceiling
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class StreamClient(asyncio.Protocol):
    """One event stream: keeps (arrival time, bytes) of every read; `headers` resolves on the status line."""

    def __init__(self, request: bytes, headers: asyncio.Future, closed: asyncio.Future) -> None:
        self.request = request
        self.headers = headers
        self.closed = closed
        self.reads: list[tuple[float, bytes]] = []
        self.transport: asyncio.Transport | None = None
        self._head = b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.reads.append((time.time(), data))
        if not self.headers.done():
            self._head += data
            if b"\r\n\r\n" in self._head:
                status_line = self._head.split(b"\r\n", 1)[0].split()
                self.headers.set_result(int(status_line[1]) if len(status_line) > 1 else 0)
        if data.endswith(END_OF_BODY):
            self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.headers.done():
            self.headers.set_exception(exc or ConnectionResetError("closed before the headers"))
        if not self.closed.done():
            self.closed.set_result(None)


@dataclass
class Opened:
    """What opening the streams gave: the live clients and each failure's reason."""

    clients: list[StreamClient] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1


async def open_streams(
    host: str, port: int, path: str, count: int, per_s: float = 1000.0, timeout_s: float = 60.0
) -> Opened:
    """Open `count` streams at `per_s` a second; a stream whose answer has no 200 within `timeout_s` fails."""
    loop = asyncio.get_running_loop()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
        "Cache-Control: no-cache\r\n\r\n"
    ).encode()
    opened = Opened()
    began = time.perf_counter()

    async def one() -> None:
        client = StreamClient(request, loop.create_future(), loop.create_future())
        try:
            async with asyncio.timeout(timeout_s):
                await loop.create_connection(lambda: client, host, port)
                status = await client.headers
        except TimeoutError:
            opened.fail(f"no answer within {timeout_s:g} s")
        except OSError as exc:
            opened.fail(type(exc).__name__)
        else:
            if status == 200:
                opened.clients.append(client)
                return
            opened.fail(f"HTTP {status}")
        client.headers.cancel()  # nobody awaits it any more
        if client.transport is not None:
            client.transport.close()

    tasks = []
    for index in range(count):
        tasks.append(asyncio.create_task(one()))
        if (index + 1) % 50 == 0:
            await asyncio.sleep(50 / per_s)
    await asyncio.gather(*tasks)
    opened.seconds = round(time.perf_counter() - began, 2)
    return opened


async def wait_closed(clients: list[StreamClient], timeout_s: float) -> int:
    """Wait until every client's stream has ended; returns how many were still open at the deadline."""
    pending = [client.closed for client in clients if not client.closed.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout_s)
    still_open = [client for client in clients if not client.closed.done()]
    for client in still_open:
        client.transport.close()
    return len(still_open)


class Dechunker:
    """HTTP/1.1 chunked transfer coding, undone incrementally (chunk extensions and trailers ignored)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.left: int | None = None  # bytes left in the current chunk; None: a size line comes next
        self.ended = False

    def feed(self, data: bytes) -> bytes:
        """Add raw body bytes; returns the payload bytes they complete."""
        self.buffer += data
        out = bytearray()
        while not self.ended:
            if self.left is None:
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    break
                size, self.buffer = int(self.buffer[:end].split(b";")[0], 16), self.buffer[end + 2 :]
                self.ended, self.left = size == 0, size
                continue
            if self.left:
                taken = self.buffer[: self.left]
                out += taken
                self.buffer, self.left = self.buffer[len(taken) :], self.left - len(taken)
                if self.left:
                    break
            if len(self.buffer) < 2:  # the CRLF after a chunk's data
                break
            self.buffer, self.left = self.buffer[2:], None
        return bytes(out)


def frames(reads: list[tuple[float, bytes]]) -> list[tuple[float, dict]]:
    """Parse one stream's reads (an HTTP response) into (arrival time, JSON payload) for each event."""
    found: list[tuple[float, dict]] = []
    head, body = b"", None
    parser, dechunker = EventParser(), None
    for arrived, data in reads:
        if body is None:
            head += data
            if b"\r\n\r\n" not in head:
                continue
            head, _, data = head.partition(b"\r\n\r\n")
            body = True
            if b"transfer-encoding: chunked" in head.lower():
                dechunker = Dechunker()
        payload = dechunker.feed(data) if dechunker else data
        # Status payloads only: `event: log` lines are not progress updates.
        found.extend((arrived, event.json()) for event in parser.feed(payload) if event.event is None)
    return found


class EventStream:
    """One `text/event-stream` response read on a raw socket (HTTP/1.0, so never chunked).

    `on_event(data, received_at)` is called from a reader thread with each status event's parsed
    JSON `data` and the wall-clock time it arrived.
    """

    def __init__(self, url: str, on_event: Callable[[dict, float], None] | None = None) -> None:
        for _ in range(2):  # a redirect to the streams listener is followed once, as EventSource does
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
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:])
            }
            self.content_type = headers.get("content-type", "")
            if self.status not in (301, 302, 307, 308) or "location" not in headers:
                break
            self.sock.close()
            url = urljoin(url, headers["location"])
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
