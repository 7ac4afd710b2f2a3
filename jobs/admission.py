"""Admitting a start: RQ's own writes and one Lua check, in one transaction and one round trip.

The pipeline holds exactly what RQ's `Queue.enqueue_job` (or `Queue.schedule_job`, for a delay)
writes: the job hash, and the id pushed on the queue (or added to its scheduled registry).
After them, inside the same MULTI/EXEC, the ADMIT script undoes those writes when the
Idempotency-Key is already claimed (it answers the earlier claim) or when the queue's waiting
jobs, queued plus scheduled (delayed, or waiting to retry), now exceed the cap; otherwise it
claims the key. Redis runs the transaction as one step, so racing starts never see each other
half-done and no worker can pop a job that is then taken back.

A group (`jobs.groups`) is admitted the same way, whole: ADMIT_GROUP checks every queue its
jobs go to after all of them and the group's own set are written, and undoes them all when one
queue would exceed the cap.

The scripts go as EVAL, not EVALSHA: a server that lost its script cache (a restart, a
failover) answers NOSCRIPT inside MULTI without stopping the other commands, which would
enqueue the job unchecked.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from redis import Redis
from redis.client import Pipeline
from rq import Queue
from rq.group import Group
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

# KEYS: each queue's list and scheduled registry (2 per queue), each job's hash, the group's set,
# RQ's registry of groups. ARGV: cap, number of queues, group id, then each job's id and its
# queue's number (1-based), in the order of their hashes in KEYS.
ADMIT_GROUP = """
local cap, queues, group = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for q = 1, queues do
  if redis.call('LLEN', KEYS[2 * q - 1]) + redis.call('ZCARD', KEYS[2 * q]) > cap then
    local jobs = (#ARGV - 3) / 2
    for j = 1, jobs do
      redis.call('LREM', KEYS[2 * tonumber(ARGV[3 + 2 * j]) - 1], -1, ARGV[2 + 2 * j])
      redis.call('DEL', KEYS[2 * queues + j])
    end
    redis.call('DEL', KEYS[#KEYS - 1])
    redis.call('SREM', KEYS[#KEYS], group)
    return 'full'
  end
end
return 'ok'
"""


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
    also: Callable[[Pipeline], None] | None = None,
) -> Admission:
    """Enqueue `job` (or schedule it `at` a time) in one transaction that admits it or takes it back.

    Args:
        queue: where the job goes; its connection must be a real client (not a pipeline).
        job: built with `queue.create_job(...)`.
        at: run no sooner than this (RQ's scheduler moves it to the queue then).
        max_queued: the most waiting jobs (queued plus scheduled) the queue may hold with this one.
        claim: an Idempotency-Key claim to take with the job.
        also: queues more writes on the transaction (a browser's row, `jobs.owned`); kept when refused.

    Returns:
        ADMITTED; or REPLAY / FULL, with nothing of the job left in Redis.
    """
    pipe = queue.connection.pipeline()
    if at is None:
        queue.enqueue_job(job, pipeline=pipe)
    else:
        queue.schedule_job(job, at, pipeline=pipe)
    if also is not None:
        also(pipe)
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


def enqueue_group_admitted(
    connection: Redis,
    group: Group,
    jobs: list[tuple[Queue, Job]],
    *,
    max_queued: int | None = None,
    also: Callable[[Pipeline], None] | None = None,
) -> str:
    """Enqueue a group's jobs (and the group) in one transaction that admits them all or none.

    Args:
        connection: a real client (not a pipeline).
        group: RQ's group the jobs join (each already carries its `group_id`).
        jobs: each job, built with `queue.create_job(...)`, and its queue.
        max_queued: the most waiting jobs (queued plus scheduled) any of the queues may hold with them.
        also: queues more writes on the transaction (a browser's row, `jobs.owned`); kept when refused.

    Returns:
        ADMITTED; or FULL, with nothing of the group left in Redis.
    """
    pipe = connection.pipeline()
    for queue, job in jobs:
        queue.enqueue_job(job, pipeline=pipe)
    if also is not None:
        also(pipe)
    pipe.sadd(group.key, *[job.id for _, job in jobs])
    pipe.sadd(Group.REDIS_GROUP_KEY, group.name)
    if max_queued is not None:
        queues = list({queue.name: queue for queue, _ in jobs}.values())
        number = {queue.name: index for index, queue in enumerate(queues, start=1)}
        keys = [key for queue in queues for key in (queue.key, queue.scheduled_job_registry.key)]
        keys += [job.key for _, job in jobs] + [group.key, Group.REDIS_GROUP_KEY]
        args = [max_queued, len(queues), group.name]
        args += [value for queue, job in jobs for value in (job.id, number[queue.name])]
        pipe.eval(ADMIT_GROUP, len(keys), *keys, *args)
    results = pipe.execute()
    return _text(results[-1]) if max_queued is not None else ADMITTED
