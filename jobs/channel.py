"""A job's pub/sub channel: how a contract payload is published on it.

Below the writer (`jobs.progress`), the stop protocol and cancel (`jobs.control`) and the
lifecycle callbacks (`jobs.callbacks`), which all publish; it imports none of them. Channel
names come from `jobs.keys`.
"""

import json
from typing import Any

from redis import Redis
from redis.client import Pipeline

from jobs.keys import channel_for


def encode(payload: dict[str, Any]) -> str:
    """A contract payload as the JSON text published on its channel."""
    return json.dumps(payload, default=str)


def publish(connection: Redis | Pipeline, payload: dict[str, Any]) -> Any:
    """Publish a contract payload on its job's channel; returns how many subscribers got it.

    On a pipeline the PUBLISH is queued, and the count comes with the pipeline's results.
    """
    return connection.publish(channel_for(payload["id"]), encode(payload))
