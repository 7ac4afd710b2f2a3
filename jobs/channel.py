"""A job's pub/sub channel: how a contract payload is published on it (and a queue's line channel).

Below the writer (`jobs.progress`), the stop protocol and cancel (`jobs.control`) and the
lifecycle callbacks (`jobs.callbacks`), which all publish; it imports none of them. Channel
names come from `jobs.keys`.
"""

import json
import math
from typing import Any

from redis import Redis
from redis.client import Pipeline

from jobs.keys import channel_for, line_channel

# Deeper than any payload nests; past it (a value that contains itself) a value becomes its text.
_MAX_DEPTH = 32


def encode(value: Any, **options: Any) -> str:
    """JSON text of a payload: the one encoder of /status, the event stream and the pub/sub channels.

    A value JSON cannot hold (a set, bytes, a complex, NaN or infinity, a key that is not text,
    any object) becomes its Python text, so a job's odd result is shown, never a 500.

    Args:
        options: `json.dumps` options (separators, indent, sort_keys, ensure_ascii).
    """
    try:
        return json.dumps(value, allow_nan=False, default=str, **options)
    except (TypeError, ValueError):
        return json.dumps(_jsonable(value, 0), allow_nan=False, default=str, **options)


def _jsonable(value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return str(value)
    if isinstance(value, dict):
        return {_key(key): _jsonable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item, depth + 1) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _key(key: Any) -> Any:
    return key if isinstance(key, str | int | float | bool) or key is None else str(key)


def publish(connection: Redis | Pipeline, payload: dict[str, Any]) -> Any:
    """Publish a contract payload on its job's channel; returns how many subscribers got it.

    On a pipeline the PUBLISH is queued, and the count comes with the pipeline's results.
    """
    return connection.publish(channel_for(payload["id"]), encode(payload))


def publish_line_moved(connection: Redis | Pipeline, queue_name: str) -> Any:
    """Say that a queue's line moved (a job of it started, ended or was canceled): one message per
    queue, which the event streams of waiting jobs react to by re-reading their place in line."""
    return connection.publish(line_channel(queue_name), "")
