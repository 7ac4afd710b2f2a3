"""A waiting job's place in line: read inside the snapshot's one script (`jobs.snapshot`), decoded here.

`position` is 1 for the job a free worker of its queue would take next: its index in its own
queue plus every job waiting in the queues its workers serve first (RQ's per-queue worker
registry says which workers serve it and, in each worker's hash, in what order; with no
worker registered, `FALLBACK_ORDER`). A job that is not in its queue's list (a worker holds it
in the intermediate list, about to start it) has no position. The read is a few commands per
queue and per worker: LPOS and LLEN, never a walk of the queue.
"""

from typing import Any

from rq.queue import Queue
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

# The queues' priority when no worker is registered to say it: the Procfile's worker line.
FALLBACK_ORDER = ("high", "default", "low")

_QUEUE_PREFIX = Queue.redis_queue_namespace_prefix
_WORKERS_PREFIX = WORKERS_BY_QUEUE_KEY % ""

# A Lua function for the snapshot script: the line ahead of job `id` in queue `origin`, or false
# when the job is not in its queue's list. `fallback` is FALLBACK_ORDER, comma-separated.
# Returns {position, number of workers serving the queue}.
LINE_LUA = f"""
local function line_of(id, origin, fallback)
  local own = '{_QUEUE_PREFIX}' .. origin
  local index = redis.call('LPOS', own, id)
  if not index then return false end
  local before, seen, workers = {{}}, {{}}, 0
  for _, worker in ipairs(redis.call('SMEMBERS', '{_WORKERS_PREFIX}' .. origin)) do
    local listed = redis.call('HGET', worker, 'queues')
    if listed then
      workers = workers + 1
      local ahead = true
      for name in string.gmatch(listed, '[^,]+') do
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
    for name in string.gmatch(fallback, '[^,]+') do
      if name == origin then break end
      table.insert(before, name)
    end
  end
  local position = index + 1
  for _, name in ipairs(before) do
    position = position + redis.call('LLEN', '{_QUEUE_PREFIX}' .. name)
  end
  return {{position, workers}}
end
"""
FALLBACK_ARG = ",".join(FALLBACK_ORDER)


def place(reply: list | None) -> dict[str, Any]:
    """A queued job's `position` (None when it is not in its queue's list) from `line_of`'s reply."""
    if not reply:
        return {"position": None}
    position, _workers = reply
    return {"position": int(position)}
