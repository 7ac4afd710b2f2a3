"""Reading `text/event-stream`: one incremental parser for the tests and the bench.

Follows the WHATWG event-stream rules we rely on: lines end in LF, CR or CRLF; a blank line
ends an event; `data:` lines are joined with LF; `event:` and `id:` are kept; comments (`:`)
such as heartbeats are skipped; an event with no data is not dispatched.
"""

import codecs
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jobs.contract import is_terminal

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Event:
    """One dispatched event."""

    data: str
    event: str | None = None
    id: str | None = None

    def json(self) -> Any:
        """The data parsed as JSON."""
        return json.loads(self.data)


class EventParser:
    """Feed it chunks of a stream as they arrive; it returns the events they complete."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, chunk: bytes | str) -> list[Event]:
        """Add a chunk (bytes or text); returns every event it completes, in order."""
        self._buffer += self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        events = []
        while (match := _LINE_END.search(self._buffer)) is not None:
            if match.group() == "\r" and match.end() == len(self._buffer):
                break  # the LF of a CRLF may be in the next chunk
            line, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            event = Event("\n".join(self._data), self._event, self._id) if self._data else None
            self._data, self._event, self._id = [], None, None
            return event
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            self._id = value
        return None


def read_json_events(chunks: Iterable[bytes | str], count: int | None = None) -> list[dict]:
    """The JSON payloads of a stream's unnamed events (a job's status payloads; `event: log` lines
    are skipped), read until `count` of them, a terminal state, or the stream's end.

    The caller bounds the wait: a socket read timeout on a real stream, or the server's
    heartbeat interval on the Flask test client.
    """
    payloads: list[dict] = []
    for event in read_events(chunks, lambda event: event.event is None and is_terminal(event.json())):
        if event.event is None:
            payloads.append(event.json())
            if len(payloads) == count:
                break
    return payloads


def read_events(chunks: Iterable[bytes | str], last: Callable[[Event], bool]) -> Iterator[Event]:
    """Every event of a stream, in order, up to the first for which `last` is true (included)."""
    parser = EventParser()
    for chunk in chunks:
        for event in parser.feed(chunk):
            yield event
            if last(event):
                return
