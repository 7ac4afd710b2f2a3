"""Admitting a start: RQ's own writes and one Lua check, in one transaction and one round trip.

The pipeline holds exactly what RQ's `Queue.enqueue_job` (or `Queue.schedule_job`, for a delay)
writes: the job hash, and the id pushed on the queue (or added to its scheduled registry).
After them, inside the same MULTI/EXEC, the ADMIT script undoes those writes when the
Idempotency-Key is already claimed (it answers the earlier claim) or when the queue's waiting
jobs, queued plus scheduled (delayed, or waiting to retry), now exceed the cap; otherwise it
claims the key. Redis runs the transaction as one step, so racing starts never see each other
half-done and no worker can pop a job that is then taken back.

The script goes as EVAL, not EVALSHA: a server that lost its script cache (a restart, a
failover) answers NOSCRIPT inside MULTI without stopping the other commands, which would
enqueue the job unchecked.
"""

from dataclasses import dataclass
from datetime import datetime

from rq import Queue
from rq.job import Job

ADMIT = """
local job_id, cap, claim = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local function undo()
  redis.call('LREM', KEYS[1], -1, job_id)
  redis.call('ZREM', KEYS[2], job_id)
  redis.call('DEL', KEYS[3])
end
if claim ~= '' then
  local earlier = redis.call('GET', KEYS[4])
  if earlier then
    undo()
    return {'replay', earlier}
  end
end
if cap >= 0 and redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) > cap then
  undo()
  return {'full', ''}
end
if claim ~= '' then
  redis.call('SET', KEYS[4], claim, 'EX', ARGV[4])
end
return {'ok', ''}
"""
ADMITTED, REPLAY, FULL = "ok", "replay", "full"


@dataclass(frozen=True)
class Claim:
    """An Idempotency-Key claim to take with the job: where it lives, what it stores, for how long."""

    key: str
    value: str
    ttl_s: int


@dataclass(frozen=True)
class Admission:
    """What became of a start: ADMITTED, REPLAY (with the earlier claim's value) or FULL."""

    outcome: str
    earlier: str | None = None


def enqueue_admitted(
    queue: Queue,
    job: Job,
    *,
    at: datetime | None = None,
    max_queued: int | None = None,
    claim: Claim | None = None,
) -> Admission:
    """Enqueue `job` (or schedule it `at` a time) in one transaction that admits it or takes it back.

    Args:
        queue: where the job goes; its connection must be a real client (not a pipeline).
        job: built with `queue.create_job(...)`.
        at: run no sooner than this (RQ's scheduler moves it to the queue then).
        max_queued: the most waiting jobs (queued plus scheduled) the queue may hold with this one.
        claim: an Idempotency-Key claim to take with the job.

    Returns:
        ADMITTED; or REPLAY / FULL, with nothing of the job left in Redis.
    """
    pipe = queue.connection.pipeline()
    if at is None:
        queue.enqueue_job(job, pipeline=pipe)
    else:
        queue.schedule_job(job, at, pipeline=pipe)
    keys = [queue.key, queue.scheduled_job_registry.key, job.key, claim.key if claim else job.key]
    args = [
        job.id,
        -1 if max_queued is None else max_queued,
        claim.value if claim else "",
        claim.ttl_s if claim else 0,
    ]
    pipe.eval(ADMIT, len(keys), *keys, *args)
    outcome, earlier = pipe.execute()[-1]
    outcome = _text(outcome)
    return Admission(outcome, _text(earlier) if outcome == REPLAY else None)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
