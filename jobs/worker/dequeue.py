"""Reliable dequeue over several queues: nothing taken from a queue is lost with its worker.

RQ 3.0 moves a job into its queue's intermediate list (`<queue key>:intermediate`) only when a
worker listens on one queue; with several it BLPOPs, and a job popped by a worker that then dies
or loses Redis sits in no queue and no registry for ever. `ReliableQueue.dequeue_any` instead
moves the first job of the first non-empty queue (priority order kept) into that queue's
intermediate list and reads its hash, in one Lua script and one round trip. The worker
(`jobs.worker.bookkeeping`) removes it from there in the script that registers it as started, so a job is
always in its queue, its intermediate list or the StartedJobRegistry.

`peek` reads the job `pop` would take, without taking it: a worker hands it to its busy horse,
which starts it with the end of the job before only if it is still the one `pop` would take
(`jobs.worker.bookkeeping`), so jobs start in the order RQ's dequeue starts them.

`rescue_stranded` puts back at the FRONT of its queue a job that sits in an intermediate list
outside the StartedJobRegistry: seen there twice, at least `STUCK_GAP_S` apart by Redis's
clock (a live worker holds a job there for milliseconds), in one atomic script per call.
A job that may no longer start (failed by the lost-job check, canceled, deleted) or is back in
its queue already is only dropped from the list.

Idle workers wait on a wake-up: `push_job_id` adds a PUBLISH on the queue's wake channel to
the enqueue's own pipeline, so it costs no extra round trip. Enqueues that do not publish (RQ's
scheduler, plain `rq.Queue` users) are found by the worker's re-check every `FALLBACK_S`.
"""

import time
from collections.abc import Iterable, Sequence

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.utils import as_text, backend_class

from jobs.keys import stranded_seen_key, wake_channel
from jobs.worker.rq_adapter import LUA_JOB_OF_STARTED_MEMBER, LUA_STARTABLE

# How long an idle worker waits for a wake-up before it looks at its queues anyway (seconds).
FALLBACK_S = 1.0
# How often a worker looks for stranded jobs (seconds); also once when it starts.
RESCUE_EVERY_S = 10.0
# A job must be seen stranded twice at least this far apart (seconds, Redis's clock).
STUCK_GAP_S = 5.0

# KEYS: per queue, in priority order, its list, its intermediate list and its stranded-seen hash.
# ARGV: the job hash key prefix. Returns false when every queue is empty, else the queue's
# number (1-based), the job id and the job's hash (HGETALL). A job whose hash is gone is
# dropped from the intermediate list and the next one is taken, as RQ skips it.
_DEQUEUE = Script(
    None,
    b"""
for q = 1, #KEYS / 3 do
  local queue, held, seen = KEYS[3 * q - 2], KEYS[3 * q - 1], KEYS[3 * q]
  while true do
    local id = redis.call('LMOVE', queue, held, 'LEFT', 'RIGHT')
    if not id then break end
    redis.call('HDEL', seen, id)
    local data = redis.call('HGETALL', ARGV[1] .. id)
    if #data > 0 then return {q, id, data} end
    redis.call('LREM', held, -1, id)
  end
end
return false
""",
)

# KEYS: per queue, its list, intermediate list, StartedJobRegistry and stranded-seen hash.
# ARGV: the job hash key prefix, the gap in seconds, then each queue's wake channel.
# Returns {ids put back at the front of their queue, ids only dropped from the intermediate list}.
_RESCUE = Script(
    None,
    LUA_STARTABLE
    + b"""
local prefix, gap = ARGV[1], tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local rescued, dropped = {}, {}
for q = 1, #KEYS / 4 do
  local queue, held, started, seen = KEYS[4 * q - 3], KEYS[4 * q - 2], KEYS[4 * q - 1], KEYS[4 * q]
  local ids = redis.call('LRANGE', held, 0, -1)
  local waiting = {}
  for _, id in ipairs(ids) do waiting[id] = true end
  for _, id in ipairs(redis.call('HKEYS', seen)) do
    if not waiting[id] then redis.call('HDEL', seen, id) end
  end
  if #ids > 0 then
    for _, member in ipairs(redis.call('ZRANGE', started, 0, -1)) do
      waiting["""
    + LUA_JOB_OF_STARTED_MEMBER
    + b"""] = nil
    end
    local back = 0
    for i = #ids, 1, -1 do
      local id = ids[i]
      if waiting[id] then
        waiting[id] = nil
        local first = redis.call('HGET', seen, id)
        if not first then
          redis.call('HSET', seen, id, string.format('%.6f', now))
        elseif now - tonumber(first) >= gap then
          redis.call('LREM', held, 0, id)
          redis.call('HDEL', seen, id)
          if startable(prefix .. id) and not redis.call('LPOS', queue, id) then
            redis.call('LPUSH', queue, id)
            table.insert(rescued, id)
            back = back + 1
          else
            table.insert(dropped, id)
          end
        end
      end
    end
    if back > 0 then redis.call('PUBLISH', ARGV[2 + q], '') end
  end
end
return {rescued, dropped}
""",
)


# KEYS: the queues in priority order. ARGV: the job hash key prefix. Returns false when every
# queue is empty or the first job's hash is gone, else the queue's number (1-based), the id and
# the hash of the first job of the first non-empty queue. Moves nothing.
_PEEK = Script(
    None,
    b"""
for q = 1, #KEYS do
  local id = redis.call('LINDEX', KEYS[q], 0)
  if id then
    local data = redis.call('HGETALL', ARGV[1] .. id)
    if #data > 0 then return {q, id, data} end
    return false
  end
end
return false
""",
)

# Marks a job object with how it was taken (`taken_from`); it travels with its state to the horse.
_TAKEN = "_taken_from"
HELD = "held"


class ReliableQueue(Queue):
    """An RQ queue whose multi-queue dequeue is reliable and whose enqueues wake idle workers."""

    def push_job_id(self, job_id: str, pipeline: Pipeline | None = None, at_front: bool = False) -> None:
        """Push the id as RQ does, and publish on the queue's wake channel in the same round trip."""
        if pipeline is None:
            with self.connection.pipeline() as pipe:
                self.push_job_id(job_id, pipeline=pipe, at_front=at_front)
                pipe.execute()
            return
        super().push_job_id(job_id, pipeline=pipeline, at_front=at_front)
        pipeline.publish(wake_channel(self.name), b"")

    @classmethod
    def dequeue_any(
        cls,
        queues: Iterable[Queue],
        timeout: int | None,
        connection: Redis,
        job_class: type[Job] | None = None,
        serializer=None,
        death_penalty_class=None,
    ) -> tuple[Job, Queue] | None:
        """The first job of the first non-empty queue, moved to that queue's intermediate list.

        Args:
            queues: in priority order.
            timeout: None to return at once; else look again every `FALLBACK_S` for up to
                `timeout` seconds (the worker waits on wake-ups instead, see `jobs.worker`).

        Returns:
            (job, queue) as RQ's `Queue.dequeue_any`, or None when every queue is empty.

        Raises:
            DequeueTimeout: `timeout` passed with every queue empty.
        """
        queues = list(queues)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = pop(queues, connection, job_class, serializer)
            if found is not None or deadline is None:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise DequeueTimeout(timeout, [queue.key for queue in queues])
            time.sleep(min(FALLBACK_S, left))


def pop(
    queues: Sequence[Queue],
    connection: Redis,
    job_class: type[Job] | None = None,
    serializer=None,
) -> tuple[Job, Queue] | None:
    """One try of `ReliableQueue.dequeue_any`: one script call; None when every queue is empty.

    Returns:
        The job, and the one of `queues` it came from (RQ's dequeue makes a copy of that queue).
    """
    if not queues:
        return None
    job_cls: type[Job] = backend_class(queues[0], "job_class", override=job_class)
    keys = [key for queue in queues for key in (queue.key, queue.intermediate_queue_key, seen_key(queue))]
    reply = _DEQUEUE(keys=keys, args=[job_cls.redis_job_namespace_prefix], client=connection)
    return _job_from(reply, queues, connection, job_cls, serializer, HELD)


def peek(
    queues: Sequence[Queue],
    connection: Redis,
    job_class: type[Job] | None = None,
    serializer=None,
) -> tuple[Job, Queue] | None:
    """The job `pop` would take now, left where it is; one script call.

    Its start (`jobs.worker.bookkeeping`) takes it only if it is then still the job `pop` would take: first
    in its queue, with the queues before that one empty (`taken_from` names them).
    """
    if not queues:
        return None
    job_cls: type[Job] = backend_class(queues[0], "job_class", override=job_class)
    keys = [queue.key for queue in queues]
    reply = _PEEK(keys=keys, args=[job_cls.redis_job_namespace_prefix], client=connection)
    ahead = keys[: int(reply[0]) - 1] if reply else []
    return _job_from(reply, queues, connection, job_cls, serializer, ahead)


def _job_from(reply, queues, connection, job_cls, serializer, taken) -> tuple[Job, Queue] | None:
    """The job a `_DEQUEUE` or `_PEEK` reply holds, marked with how it was taken (`taken_from`)."""
    if not reply:
        return None
    number, job_id, data = reply
    queue = queues[int(number) - 1]
    job = job_cls(as_text(job_id), connection=connection, serializer=serializer)
    try:
        job.restore(dict(zip(data[::2], data[1::2], strict=True)))
    except Exception as exc:
        exc.job_id, exc.queue = job.id, queue  # as RQ's dequeue_any reports a job it cannot load
        raise
    job.__dict__[_TAKEN] = taken
    return job, queue


def taken_from(job: Job) -> list[str] | str | None:
    """How this job object was taken: `HELD` by `pop`; by `peek`, the keys of the queues that must
    be empty for it to start; None when by neither (a caller of RQ's API handed it to the worker)."""
    return job.__dict__.get(_TAKEN)


def rescue_stranded(
    queues: Sequence[Queue], connection: Redis, gap_s: float = STUCK_GAP_S
) -> tuple[list[str], list[str]]:
    """Put back at the front of its queue every job stranded in these queues' intermediate lists.

    Returns:
        The ids put back, and the ids only dropped from an intermediate list (may no longer start).
    """
    if not queues:
        return [], []
    keys = []
    for queue in queues:
        keys += [queue.key, queue.intermediate_queue_key, queue.started_job_registry.key, seen_key(queue)]
    prefix = queues[0].job_class.redis_job_namespace_prefix
    args = [prefix, gap_s, *(wake_channel(queue.name) for queue in queues)]
    rescued, dropped = _RESCUE(keys=keys, args=args, client=connection)
    return [as_text(i) for i in rescued], [as_text(i) for i in dropped]


def seen_key(queue: Queue) -> str:
    """The queue's stranded-seen hash."""
    return stranded_seen_key(queue.name)
