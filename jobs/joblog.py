"""A job's log: the lines its code writes, kept in a capped Redis Stream and pushed as they come.

Job code writes a line with `log(message, level="info")`; `jobs.progress.report(..., log=True)`
writes the step's status as a line in the save's own round trip; `jobs.logcapture` turns the
standard `logging` records a job emits into lines. Each line goes to the job's stream
(`jobs.keys.log_key`, at most `LOG_MAX_LINES` lines, oldest dropped) and is published on its log
channel with the id Redis gave it, by one Lua script: the id exists only once Redis has added the
line, and readers resume after it (`GET /status/<id>/logs?after=`, `Last-Event-ID`).

A stream outlives its job by at most a day past the job's timeout while it runs; the lifecycle
callbacks then give it the job's own result or failure TTL (`expire_with`), so it expires with
the job.
"""

import os
import re
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq import get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job

from jobs import outage
from jobs.contract import isoformat
from jobs.keys import log_channel_for, log_key
from jobs.snapshot import JOB_ID_PATTERN

DEFAULT_MAX_LINES = 1000
LEVELS = ("debug", "info", "warning", "error", "critical")
# A longer message is cut: 1,000 lines of this stay under 4 MiB per job.
MAX_MESSAGE_CHARS = 4000
# Lines one read returns at most; `next` resumes after the last.
PAGE_LINES = 1000
# While the job runs its stream lives this long past the job's timeout (a job whose end nobody
# records, e.g. one enqueued without our callbacks, must not keep its log for ever).
RUNNING_GRACE_S = 24 * 60 * 60
DEFAULT_TIMEOUT_S = 180
FIRST_ID = "0-0"
# A stream id: milliseconds and a sequence number (ASCII digits only: `\d` would also take other
# scripts' digits, which Redis refuses and the published schema too). At most 19 digits a part:
# every such number is below Redis's limit, 2**64, so this pattern is the whole rule and the
# published schema states it exactly (Redis's own ids, from '*', have 13 digits and a few).
ID_PATTERN = re.compile(r"[0-9]{1,19}-[0-9]{1,19}")

# KEYS[1]: the stream. ARGV: channel, most lines kept, TTL in seconds, then (at, level, message) per line.
_APPEND = """
local ids = {}
for i = 4, #ARGV, 3 do
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*',
                        'at', ARGV[i], 'level', ARGV[i + 1], 'message', ARGV[i + 2])
  local line = {id = id, at = ARGV[i], level = ARGV[i + 1], message = ARGV[i + 2]}
  redis.call('PUBLISH', ARGV[1], cjson.encode(line))
  ids[#ids + 1] = id
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return ids
"""


class BadLogId(ValueError):
    """A log position that is not a line id this API hands out ("<ms>-<seq>")."""


def max_lines() -> int:
    """How many lines a job's log keeps, the newest (env LOG_MAX_LINES, worker side)."""
    return int(os.environ.get("LOG_MAX_LINES", DEFAULT_MAX_LINES))


def make_line(message: str, level: str = "info", at: datetime | None = None) -> dict[str, str]:
    """A line as it is stored, before Redis gives it an id.

    Raises:
        ValueError: the level is not one of LEVELS.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    return {
        "at": isoformat(at or datetime.now(UTC)),
        "level": level,
        "message": str(message)[:MAX_MESSAGE_CHARS],
    }


# Lines a throttled `report(..., log=True)` kept for the next write, per running job.
_waiting: dict[str, list[dict[str, str]]] = {}


def log(message: str, level: str = "info") -> bool:
    """Write a line to the current job's log now; do nothing outside a job.

    Lines kept back by a throttled `report(..., log=True)` go first, in the same round trip.

    Returns:
        True when the line was written, False outside a job.

    Raises:
        ValueError: the level is not one of LEVELS.
    """
    line = make_line(message, level)
    job = get_current_job()
    if job is None:
        return False
    write(job, [line])
    return True


def write(job: Job, lines: list[dict[str, str]], wait: bool = False) -> None:
    """Write lines to a job's log in one round trip, after any it kept back.

    With Redis away, the lines are kept back for the next write (the newest `max_lines()`), unless
    `wait`: then the write waits for Redis as the worker's own commands do (`jobs.outage`).
    """
    pipe = job.connection.pipeline(transaction=False)
    queued = append(pipe, job, lines)
    try:
        with nullcontext() if wait else outage.fail_fast():
            pipe.execute()
    except outage.OUTAGE_ERRORS:
        keep_back(job.id, queued)
        if wait:
            raise


def keep(job_id: str, line: dict[str, str]) -> None:
    """Keep a line back to be written with the job's next write (a throttled report)."""
    keep_back(job_id, [line], first=False)


def keep_back(job_id: str, lines: list[dict[str, str]], first: bool = True) -> None:
    """Keep lines back for the job's next write, before (`first`) or after those kept already; the
    newest `max_lines()` are kept, as the log itself keeps them."""
    waiting = _waiting.get(job_id, [])
    waiting = lines + waiting if first else waiting + lines
    _waiting[job_id] = waiting[-max_lines() :]


def append(pipe: Pipeline, job: Job, lines: list[dict[str, str]]) -> list[dict[str, str]]:
    """Queue on `pipe` the lines kept back for `job`, then `lines`; nothing when there are none.

    Returns:
        The lines queued.
    """
    lines = _waiting.pop(job.id, []) + lines
    if not lines:
        return lines
    fields = [value for line in lines for value in (line["at"], line["level"], line["message"])]
    ttl_s = max(job.timeout or DEFAULT_TIMEOUT_S, 0) + RUNNING_GRACE_S
    pipe.eval(_APPEND, 1, log_key(job.id), log_channel_for(job.id), max_lines(), ttl_s, *fields)
    return lines


def flush(job: Job) -> None:
    """Write the lines kept back for a job (its end came before another write)."""
    if _waiting.get(job.id):
        write(job, [], wait=True)


def expire_with(pipe: Pipeline | Redis, job_id: str, ttl_s: int | None) -> None:
    """Give a job's log the job's own TTL: seconds, -1 or None for never, 0 for at once."""
    if ttl_s is None or ttl_s < 0:
        pipe.persist(log_key(job_id))
    elif ttl_s == 0:
        pipe.delete(log_key(job_id))
    else:
        pipe.expire(log_key(job_id), ttl_s)


def parse_id(text: str) -> tuple[int, int]:
    """A line id as (milliseconds, sequence), for ordering.

    Raises:
        BadLogId: not "<ms>-<seq>" with at most 19 digits each.
    """
    if not ID_PATTERN.fullmatch(text or ""):
        raise BadLogId(f"not a log line id: {text[:40]!r}; use an id this API returned, e.g. 1700000000000-0")
    milliseconds, sequence = text.split("-")
    return int(milliseconds), int(sequence)


def lines_after(connection: Redis, job_id: str, after: str = FIRST_ID, count: int = PAGE_LINES) -> list[dict]:
    """The job's lines after `after` (a valid id), oldest first, at most `count`."""
    return to_lines(connection.xrange(log_key(job_id), _exclusive_start(after), "+", count=count))


def _exclusive_start(after: str) -> str:
    """XRANGE's start for "after this id" (a valid one: `parse_id` raises otherwise)."""
    parse_id(after)
    return f"({after}"


def to_lines(entries: list[tuple[Any, dict[Any, Any]]]) -> list[dict[str, str]]:
    """Stream entries as lines: {"id", "at", "level", "message"}."""
    lines = []
    for entry_id, fields in entries:
        text = {_text(key): _text(value) for key, value in fields.items()}
        lines.append({"id": _text(entry_id), **{name: text[name] for name in ("at", "level", "message")}})
    return lines


def read_page(connection: Redis, job_id: str, after: str | None = None) -> dict[str, Any]:
    """One page of a job's log: {"lines": [...], "next": the id to pass as `after` next time}.

    Raises:
        NoSuchJobError: the id is malformed, unknown, or its job has expired.
        BadLogId: `after` is not a line id.
    """
    after = FIRST_ID if after is None else after
    start = _exclusive_start(after)
    if not JOB_ID_PATTERN.fullmatch(job_id):
        raise NoSuchJobError(f"no such job: {job_id!r}")
    pipe = connection.pipeline(transaction=False)
    pipe.exists(Job.key_for(job_id))
    pipe.xrange(log_key(job_id), start, "+", count=PAGE_LINES)
    exists, entries = pipe.execute()
    if not exists:
        raise NoSuchJobError(f"no such job: {job_id!r}")
    lines = to_lines(entries)
    return {"lines": lines, "next": lines[-1]["id"] if lines else after}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
