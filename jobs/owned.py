"""The jobs and groups one owner started: the rows of a browser's own event stream.

A browser's page shows a row per job and group its session started, in any of its tabs. Each
start by a browser session is recorded here (a capped sorted set per owner, by start time) and
announced on the owner's channel, in the start's own transaction (`jobs.admission`), so an open
stream of that browser adds the row at once; a stream that opens later reads the set. Entries
of expired jobs are skipped by the readers and fall out with the cap or the set's TTL.
"""

import json
import time

from redis import Redis
from redis.client import Pipeline

from jobs.keys import rows_channel, rows_key

JOB = "job"
GROUP = "group"
KINDS = (JOB, GROUP)
# Rows one owner keeps: the cookie lists 20 jobs and 20 groups, the page shows no more.
MAX_ROWS = 40
# The set outlives the owner's last start by a day (finished jobs keep their results 500 s).
ROWS_TTL_S = 24 * 60 * 60


def record_start(pipe: Pipeline, owner: str, kind: str, row_id: str) -> None:
    """Queue on `pipe` the record that `owner` started a job or group, and its announcement.

    A start that is then refused leaves a record of a job Redis does not hold, which readers skip.

    Raises:
        ValueError: `kind` is not "job" or "group".
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    pipe.zadd(rows_key(owner), {f"{kind}:{row_id}": time.time()})
    pipe.zremrangebyrank(rows_key(owner), 0, -MAX_ROWS - 1)
    pipe.expire(rows_key(owner), ROWS_TTL_S)
    pipe.publish(rows_channel(owner), json.dumps({"kind": kind, "id": row_id}))


def started_rows(connection: Redis, owner: str) -> list[tuple[str, str]]:
    """The (kind, id) of each job and group `owner` started, oldest first (expired ones included)."""
    rows = []
    for member in connection.zrange(rows_key(owner), 0, -1):
        kind, _, row_id = (member.decode() if isinstance(member, bytes) else member).partition(":")
        if kind in KINDS and row_id:
            rows.append((kind, row_id))
    return rows


def parse_announcement(data: bytes | str) -> tuple[str, str]:
    """The (kind, id) a message on an owner's channel announces.

    Raises:
        ValueError: not an announcement `record_start` publishes.
    """
    message = json.loads(data)
    if (
        not isinstance(message, dict)
        or message.get("kind") not in KINDS
        or not isinstance(message.get("id"), str)
    ):
        raise ValueError("not a row announcement")
    return message["kind"], message["id"]
