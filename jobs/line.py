"""A waiting job's place in line: read inside the snapshot's one script (`jobs.snapshot`), decoded here.

`position` is 1 for the job a free worker of its queue would take next: its index in its own
queue plus every job waiting in the queues its workers serve first (RQ's per-queue worker
registry says which workers serve it and, in each worker's hash, in what order; with no worker
registered, `FALLBACK_ORDER`, for a queue listed there). Jobs a worker has taken but not yet
registered as started (its intermediate list: for milliseconds, or until a rescue puts a dead
worker's back at the front of the queue) count as ahead of the queue's. The read is a few commands per queue
and per worker: LPOS and LLEN, never a walk of the queue.

`expected_start_s` plays the line forward: each worker is free once its running job ends, and
each job ahead holds the first free worker for its usual duration (`jobs.durations`). The
histories, metas and start times it needs come from the same script.
"""

import heapq
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.queue import Queue
from rq.registry import StartedJobRegistry
from rq.utils import str_to_date
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from jobs.durations import usual_s
from jobs.estimate import time_left

# The queues' priority when no worker is registered to say it: the Procfile's worker line.
FALLBACK_ORDER = ("high", "default", "low")

_QUEUE_PREFIX = Queue.redis_queue_namespace_prefix
_WORKERS_PREFIX = WORKERS_BY_QUEUE_KEY % ""
_JOB_PREFIX = Job.redis_job_namespace_prefix
_STARTED_PREFIX = StartedJobRegistry.key_template.format("")
# A queue's intermediate list (`jobs.worker.dequeue`): jobs a worker took and has not started.
_HELD_SUFFIX = IntermediateQueue.get_intermediate_queue_key("")
# Jobs ahead whose usual duration is read one by one; the rest are taken to last their mean.
AHEAD_DETAIL = 20

# A Lua function for the snapshot script: the line ahead of job `id` in queue `origin`, or false
# when the job is in neither its queue's list nor its intermediate list (whose jobs are ahead of
# the queue's). `fallback` is FALLBACK_ORDER, comma-separated; `detail`
# is AHEAD_DETAIL; `history_prefix` the key prefix of the job names' histories (`jobs.durations`).
# Returns {position, number of workers serving the queue, {meta, name} of each of the first
# `detail` jobs ahead, {meta, name, started_at} of each job running in a queue those workers serve,
# and a flat list of each of those names and its history}.
LINE_LUA = f"""
local function take(ahead, key, count, detail)
  if count > 0 and #ahead < detail then
    for _, ahead_id in ipairs(redis.call('LRANGE', key, 0, math.min(count, detail - #ahead) - 1)) do
      table.insert(ahead, ahead_id)
    end
  end
end
local function line_of(id, origin, fallback, detail, history_prefix)
  local own = '{_QUEUE_PREFIX}' .. origin
  local own_held = own .. '{_HELD_SUFFIX}'
  local index, held = redis.call('LPOS', own, id), redis.call('LLEN', own_held)
  local ahead_here = index and held + index
  if not index then
    ahead_here = redis.call('LPOS', own_held, id)
    if not ahead_here then return false end
  end
  local before, seen, served, workers = {{}}, {{}}, {{}}, 0
  for _, worker in ipairs(redis.call('SMEMBERS', '{_WORKERS_PREFIX}' .. origin)) do
    local listed = redis.call('HGET', worker, 'queues')
    if listed then
      workers = workers + 1
      local ahead = true
      for name in string.gmatch(listed, '[^,]+') do
        served[name] = true
        if name == origin then
          ahead = false
        elseif ahead and not seen[name] then
          seen[name] = true
          table.insert(before, name)
        end
      end
    end
  end
  if workers == 0 then
    local higher = {{}}
    for name in string.gmatch(fallback, '[^,]+') do
      if name == origin then
        before = higher
        break
      end
      table.insert(higher, name)
    end
  end
  local position, ahead = ahead_here + 1, {{}}
  for _, name in ipairs(before) do
    local key = '{_QUEUE_PREFIX}' .. name
    local held_here, length = redis.call('LLEN', key .. '{_HELD_SUFFIX}'), redis.call('LLEN', key)
    position = position + held_here + length
    take(ahead, key .. '{_HELD_SUFFIX}', held_here, detail)
    take(ahead, key, length, detail)
  end
  take(ahead, own_held, math.min(held, ahead_here), detail)
  take(ahead, own, ahead_here - held, detail)
  local metas, running, names = {{}}, {{}}, {{}}
  for i, ahead_id in ipairs(ahead) do
    local fields = redis.call('HMGET', '{_JOB_PREFIX}' .. ahead_id, 'meta', 'description')
    metas[i] = {{fields[1] or false, fields[2] or false}}
    if fields[2] then names[fields[2]] = true end
  end
  if workers > 0 then
    for name, _ in pairs(served) do
      for _, member in ipairs(redis.call('ZRANGE', '{_STARTED_PREFIX}' .. name, 0, -1)) do
        local running_id = string.match(member, '^(.*):[^:]*$') or member
        local fields = redis.call('HMGET', '{_JOB_PREFIX}' .. running_id, 'meta', 'description', 'started_at')
        table.insert(running, {{fields[1] or false, fields[2] or false, fields[3] or false}})
        if fields[2] then names[fields[2]] = true end
      end
    end
  end
  local histories = {{}}
  for name, _ in pairs(names) do
    table.insert(histories, name)
    table.insert(histories, redis.call('LRANGE', history_prefix .. name, 0, -1))
  end
  return {{position, workers, metas, running, histories}}
end
"""
FALLBACK_ARG = ",".join(FALLBACK_ORDER)


def place(reply: list | None, loads: Callable[[bytes], Any], now: datetime | None = None) -> dict[str, Any]:
    """A queued job's `position` and `expected_start_s` from `line_of`'s reply (None when unknown).

    Args:
        reply: what `line_of` returned (false: the job is not in its queue's list).
        loads: RQ's serializer's `loads`, for the jobs' meta.
        now: the current time (tests pass their own).
    """
    if not reply:
        return {"position": None, "expected_start_s": None}
    position, workers, metas, running, flat = reply
    now = now or datetime.now(UTC)
    histories = {
        name: [float(value) for value in runs] for name, runs in zip(flat[::2], flat[1::2], strict=True)
    }
    ahead = [_usual(_meta(raw, loads), histories.get(name, [])) for raw, name in metas]
    busy = [
        _left(_meta(raw, loads), histories.get(name, []), started_at, now)
        for raw, name, started_at in running
    ]
    return {
        "position": int(position),
        "expected_start_s": expected_start_s(workers, busy, ahead, position - 1),
    }


def expected_start_s(
    workers: int, busy: list[float | None], ahead: list[float | None], count_ahead: int
) -> float | None:
    """Seconds until a worker is free for a job with `count_ahead` jobs before it.

    Each of `workers` workers is free once its running job ends (`busy`: the time left of each
    running job); each job ahead goes to the first free worker and holds it for its usual duration
    (`ahead`: those of the first jobs ahead; the jobs ahead past them are taken to last their mean).

    Returns:
        The seconds, rounded to 0.1; None with no worker, or with a time that is not known.
    """
    if workers <= 0 or None in busy or None in ahead or (count_ahead > len(ahead) and not ahead):
        return None
    free = sorted(busy)[:workers] + [0.0] * max(0, workers - len(busy))
    heapq.heapify(free)
    mean = sum(ahead) / len(ahead) if ahead else 0.0
    for duration in [*ahead, *[mean] * max(0, count_ahead - len(ahead))][:count_ahead]:
        heapq.heappush(free, heapq.heappop(free) + duration)
    return round(max(0.0, free[0]), 1)


def _usual(meta: dict[str, Any], history: list[float]) -> float | None:
    return usual_s(history, meta.get("size"))


def _left(
    meta: dict[str, Any], history: list[float], started_at: bytes | None, now: datetime
) -> float | None:
    """A running job's time left, as its own payload says it (`jobs.estimate.time_left`)."""
    progress = meta.get("progress") or {}
    current, total = progress.get("current", 0), progress.get("total", 1)
    return time_left(
        progress.get("rate"), current, total, _usual(meta, history), seconds_since(started_at, now)
    )


def seconds_since(moment: bytes | str | None, now: datetime) -> float | None:
    """Seconds from an RQ timestamp to `now`; None without one."""
    if not moment:
        return None
    then = str_to_date(moment)
    return (now - (then if then.tzinfo else then.replace(tzinfo=UTC))).total_seconds()


def _meta(raw: bytes | None, loads: Callable[[bytes], Any]) -> dict[str, Any]:
    try:
        return loads(raw) if raw else {}
    except Exception:  # as Job.restore: meta from another serializer reads as no meta
        return {}
