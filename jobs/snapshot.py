"""Read one job's contract payload from Redis in one round trip: the truth every reader starts from.

`Job.fetch` reads RQ's whole job hash (about 57 fields, the pickled call included) and the
latest result costs a second round trip. The contract needs a few fields: one Lua script reads
them and, by the job's status, its latest result (finished, failed) or when it is due
(scheduled); RQ's own serializer and `Result.restore` decode them as `Job.fetch` would.
Nothing is cached or written beside RQ's records, so RQ's own API, the dashboard and lost
workers need no hook to be read right.
"""

import re
import zlib
from base64 import b64decode
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.commands.core import Script
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.results import Result
from rq.serializers import resolve_serializer
from rq.utils import str_to_date

from jobs.contract import isoformat, short_error, to_payload
from jobs.durations import usual_s
from jobs.keys import history_key
from jobs.line import AHEAD_DETAIL, FALLBACK_ARG, LINE_LUA, place, seconds_since

# RQ's own id alphabet, without the ":" that rq reads as "job id:execution id".
JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")

# KEYS: the job hash, its results stream. ARGV: the scheduled registries' key prefix, the job id,
# the queues' fallback order and how many jobs ahead to read one by one (`jobs.line`), the job
# names' history key prefix (`jobs.durations`). Returns false for no job (or a hash without RQ's
# "data", which Job.fetch also refuses), else {status, meta, created_at, enqueued_at, started_at,
# ended_at} and the latest result (an XREVRANGE entry) when the job has ended, its due time (a
# ZSCORE) when it is scheduled, its place in line (`jobs.line.LINE_LUA`) when it is queued, or its
# name's history (its RQ description, which our starts set to its catalog name) when it runs.
_READ = Script(
    None,
    LINE_LUA.encode()
    + b"""
if redis.call('HEXISTS', KEYS[1], 'data') == 0 then return false end
local fields = redis.call('HMGET', KEYS[1], 'status', 'meta', 'created_at', 'enqueued_at',
                          'started_at', 'ended_at', 'origin', 'description')
local status, extra = fields[1], false
if status == 'finished' or status == 'failed' then
  extra = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1] or false
elseif status == 'scheduled' then
  extra = redis.call('ZSCORE', ARGV[1] .. (fields[7] or ''), ARGV[2])
elseif status == 'queued' then
  extra = line_of(ARGV[2], fields[7] or '', ARGV[3], tonumber(ARGV[4]), ARGV[5])
elseif status == 'started' then
  extra = redis.call('LRANGE', ARGV[5] .. (fields[8] or ''), 0, -1)
end
fields[8] = nil
fields[7] = nil
return {fields, extra}
""",
)
_SCHEDULED_PREFIX = ScheduledJobRegistry.key_template.format("")
_HISTORY_PREFIX = history_key("")
# RQ's default serializer: what Job.fetch decodes meta and results with.
_SERIALIZER = resolve_serializer()
_SUCCESSFUL = str(Result.Type.SUCCESSFUL.value).encode()
# How RQ writes its timestamps (rq.utils.utcformat), which is also the contract's format.
_RQ_MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def fetch_job(job_id: str, connection: Redis) -> Job:
    """Fetch a whole RQ job by id, for callers that act on it (cancel); readers use `snapshot`.

    Raises:
        NoSuchJobError: the id is malformed, unknown, or its job has expired.
    """
    if not JOB_ID_PATTERN.fullmatch(job_id):
        raise NoSuchJobError(f"no such job: {job_id!r}")
    return Job.fetch(job_id, connection=connection)


def snapshot(job_id: str, connection: Redis) -> dict[str, Any]:
    """The contract payload of one job, as Redis holds it now, in one round trip.

    Raises:
        NoSuchJobError: the id is malformed, unknown, or its job has expired.
    """
    if not JOB_ID_PATTERN.fullmatch(job_id):
        raise NoSuchJobError(f"no such job: {job_id!r}")
    reply = _READ(
        keys=[Job.key_for(job_id), Result.get_key(job_id)],
        args=[_SCHEDULED_PREFIX, job_id, FALLBACK_ARG, AHEAD_DETAIL, _HISTORY_PREFIX],
        client=connection,
    )
    if not reply:
        raise NoSuchJobError(f"no such job: {job_id!r}")
    (raw_status, raw_meta, *moments), extra = reply
    # As Job.restore: a job saved without a status is CREATED.
    status = raw_status.decode() if raw_status else JobStatus.CREATED
    ending: dict[str, Any] = {}
    if status == JobStatus.FINISHED:
        fields = _result_fields(extra)
        value = fields.get(b"return_value") if fields.get(b"type") == _SUCCESSFUL else None
        ending["result"] = None if value is None else _SERIALIZER.loads(b64decode(value))
    elif status == JobStatus.FAILED:
        exc_string = _result_fields(extra).get(b"exc_string")
        ending["error"] = short_error(zlib.decompress(b64decode(exc_string)).decode() if exc_string else None)
    elif status == JobStatus.SCHEDULED and extra:
        ending["eta"] = datetime.fromtimestamp(float(extra), tz=UTC)
    elif status == JobStatus.QUEUED:
        ending["line"] = place(extra, _SERIALIZER.loads)
    meta = _meta(raw_meta)
    if status == JobStatus.STARTED:
        ending["usual_s"] = usual_s([float(value) for value in extra or ()], meta.get("size"))
        ending["elapsed_s"] = seconds_since(moments[2], datetime.now(UTC))
    return to_payload(job_id, status, meta, updated_at=_last_change(moments), **ending)


def last_change(job: Job) -> datetime | None:
    """When a fetched job last changed by RQ's own timestamps (what `snapshot` reads from its fields)."""
    return job.ended_at or job.started_at or job.enqueued_at or job.created_at


def _result_fields(entry: list | None) -> dict[bytes, bytes]:
    """The fields of the latest result, from its XREVRANGE entry [id, [field, value, ...]].

    Decoded below as `rq.results.Result.restore` does (base64; the traceback also zlib), without
    its per-call serializer checks, which cost more than the rest of the read.
    """
    if not entry:
        return {}
    flat = entry[1]
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _last_change(moments: list[bytes | None]) -> str:
    """The latest of ended, started, enqueued and created, in the contract's format.

    RQ writes them in that very format, so they pass through; an older format is re-read.
    RQ takes a missing created_at as now.
    """
    moment = next((moment.decode() for moment in reversed(moments) if moment), None)
    if moment is not None and _RQ_MOMENT.fullmatch(moment):
        return moment
    return isoformat(str_to_date(moment) if moment else datetime.now(UTC))


def _meta(raw: bytes | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        return _SERIALIZER.loads(raw)
    except Exception:  # as Job.restore: meta from another serializer reads as no meta
        return {}
