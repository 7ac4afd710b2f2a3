"""The Server-Sent Events wire format: pure functions that build frames, no I/O.

See the WHATWG HTML standard, "Server-sent events": a frame is `field: value` lines ended by
a blank line; a line starting with ":" is a comment that clients ignore (a heartbeat).
"""

from typing import Any

from jobs.channel import encode

MEDIA_TYPE = "text/event-stream"

# Headers an event stream sets before its first byte: no caching, no proxy buffering.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def format_event(
    data: Any,
    *,
    event: str | None = None,
    event_id: str | None = None,
    retry_ms: int | None = None,
) -> str:
    """One SSE frame.

    Args:
        data: a string sent as it is, or anything else sent as compact JSON.
        event: the event type; None gives a plain "message" event.
        event_id: sets the client's last event id.
        retry_ms: how long the client waits before reconnecting.

    Returns:
        The frame, ending in a blank line. A string with line breaks becomes several
        `data:` lines, which the client joins back with "\\n".
    """
    text = data if isinstance(data, str) else encode(data, separators=(",", ":"))
    lines = []
    if event is not None:
        lines.append(f"event: {_single_line(event)}")
    if event_id is not None:
        lines.append(f"id: {_single_line(event_id)}")
    if retry_ms is not None:
        lines.append(f"retry: {int(retry_ms)}")
    lines.extend(f"data: {line}" for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return "\n".join(lines) + "\n\n"


def with_retry(frame: str, retry_ms: int) -> str:
    """A frame that also tells the client how long to wait before reconnecting."""
    return f"retry: {int(retry_ms)}\n{frame}"


def comment(text: str = "") -> str:
    """A comment frame: keeps the connection alive and is ignored by EventSource."""
    return f": {_single_line(text)}\n\n"


def heartbeat() -> str:
    """The comment sent on a silent stream, so proxies and clients see it is alive."""
    return comment("heartbeat")


def _single_line(value: str) -> str:
    return str(value).replace("\r", " ").replace("\n", " ")
