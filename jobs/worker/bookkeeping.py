"""A job's Redis bookkeeping in two round trips, one to start it and one to end it.

RQ's forking worker spends a dozen round trips on each job's bookkeeping: the parent registers
the execution, the horse then marks the job started, refreshes two heartbeats at its end, runs
the success callback (whose writes go on their own), watches the job's dependents, reads them,
and only then stores the result. `Bookkeeping` is a mixin for `jobs.worker.Worker`, whose parent
watches the horse (`jobs.worker.horse.WarmHorse`) and keeps every heartbeat while a job runs:

- **Start.** The horse sends, in one script, what RQ's parent writes in `prepare_execution`
  (the execution, the started registry, the worker busy) and what RQ's horse writes in
  `prepare_job_execution` (status "started", start time, worker name, the job key made
  persistent), and takes the job out of its intermediate list; the script first checks that
  the job still waits there and has not ended, so a job canceled, deleted or rescued since
  its dequeue is skipped, never run. The parent only makes the execution's id, so its part of a
  job is the dequeue and a message to the horse; until the start the job is in its
  intermediate list, where a dead worker's job is rescued. A job the parent only read
  (`jobs.worker.dequeue.peek`) while the horse ran the one before is taken straight from its queue by
  its start, and only if it is still the job RQ's dequeue would take then.
- **End of a success.** RQ's result, registries, worker counters and execution clean-up, and the
  writes of our success callback (`jobs.callbacks.joined_to`: the final payload, the job log's
  TTL, the run-time histogram) run in one script, as atomic as RQ's MULTI (a script returns one
  reply where a MULTI returns one per command), when the job has no dependents. No WATCH is
  needed: a job enqueued with `depends_on` watches this job's hash, so it either was added to
  the dependents before the script (which then writes nothing) or sees the job FINISHED. A job
  with dependents takes RQ's own `handle_job_success`, which moves them (or, for a parent
  canceled while it ran, holds them back) before it ends or deletes the job. When the parent
  has handed the horse its next job already (`jobs.worker.horse`), that job's start goes in the same
  round trip, after this end.

Both scripts take the commands RQ's own code queues on a pipeline (`_flat`), so what is written
is RQ's, only sent differently. The log lines are RQ's.

A `Retry` returned by the job, a repeating job, failures and stops take RQ's own path; a stop
stores the job's end before its stopped callback publishes (RQ runs the callback first).
"""

from typing import Any
from uuid import uuid4

from redis.commands.core import Script
from rq.callbacks import execute_success_callback
from rq.executions import Execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.rate_limit import release_slot
from rq.utils import now

from jobs.callbacks import joined_to
from jobs.outage import NOT_OURS, end_once_input, end_once_script
from jobs.worker.dequeue import HELD, taken_from
from jobs.worker.rq_adapter import LUA_STARTABLE, attach, mark_finished

# Runs the commands given in ARGV from its `first`, each as its argument count and its arguments;
# `reply` is the last one's reply.
_RUN_FROM = b"""
local i, reply = first, nil
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  reply = redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
"""
# Starts a job only if it still waits: still in the intermediate list its worker took it into (not
# rescued meanwhile) and startable (`LUA_STARTABLE`: not deleted, canceled, failed by the lost-job
# check or started elsewhere; a job pushed while `created` runs, as under RQ's worker).
# KEYS: that list, the job's hash, the execution's hash. ARGV: the job id, then the commands to
# run (`_RUN_FROM`). Returns 1 when the job was started, now or by this same execution before:
# redis-py sends a command again when its connection drops, and a start whose reply was lost
# must not strand its job "started".
_START = Script(
    None,
    LUA_STARTABLE
    + b"""
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  local started = redis.call('HGET', KEYS[2], 'status') == 'started'
  return (started and redis.call('EXISTS', KEYS[3]) == 1) and 1 or 0
end
if not startable(KEYS[2]) then return 0 end
local first = 2
"""
    + _RUN_FROM
    + b"return 1",
)
# Starts a job `jobs.worker.dequeue.peek` read only if it is still the job `pop` would take: the queues
# before its own empty, and first in its own. KEYS: those queues, its queue, the job's hash, the
# execution's hash. ARGV: the job id, the number of queues before its own, then the commands to
# run (`_RUN_FROM`). Returns 1 when the job was started, now or by this same execution before
# (a start sent again, as with `_START`).
_START_FIRST = Script(
    None,
    LUA_STARTABLE
    + b"""
local ahead = tonumber(ARGV[2])
local queue, job, execution = KEYS[ahead + 1], KEYS[ahead + 2], KEYS[ahead + 3]
if redis.call('EXISTS', execution) == 1 and redis.call('HGET', job, 'status') == 'started' then return 1 end
for i = 1, ahead do
  if redis.call('LLEN', KEYS[i]) > 0 then return 0 end
end
if redis.call('LINDEX', queue, 0) ~= ARGV[1] or not startable(job) then return 0 end
redis.call('LPOP', queue)
local first = 3
"""
    + _RUN_FROM
    + b"return 1",
)
# Runs the commands given in ARGV atomically (see `_RUN_FROM`); returns the last one's reply.
_RUN = Script(None, b"local first = 1\n" + _RUN_FROM + b"return reply")
# A success's end: runs the commands given in ARGV (`_RUN_FROM`) only when the job has no
# dependents (KEYS[4], its dependents set), and returns 1; else returns 0 and writes nothing, and
# RQ's own end, which moves the dependents before it ends (or deletes) the job, follows. Written
# once, and only while the job is still this execution's (`jobs.outage`: else NOT_OURS).
_END = end_once_script(_RUN_FROM, guard=b"if redis.call('SCARD', KEYS[4]) > 0 then return 0 end\n")


class Bookkeeping:
    """Mixin for RQ's `Worker` with a watching parent: a job's start and end in one round trip each."""

    def prepare_execution(self, job: Job) -> Execution:
        """In the parent: the job's execution, made here, written by the horse as it starts the job;
        RQ's for a job `jobs.worker.dequeue` did not take (a caller of RQ's API handed it)."""
        if taken_from(job) is None:
            return super().prepare_execution(job)
        execution = Execution(uuid4().hex, job.id, connection=self.connection, worker_name=self.name)
        attach(execution, job)
        self.executions[execution.id] = execution
        # Busy from here, as RQ's `set_state` would say (a SIGTERM then waits for the job); the
        # horse writes it to Redis with the job's start.
        self.note_busy()
        return execution

    def perform_job(self, job: Job, queue: Any, execution: Execution) -> bool:
        """In the horse: start the job (`start_if_waiting`), then RQ's `perform_job`; a job that no longer
        waits is skipped. A job `jobs.worker.dequeue` did not take runs as RQ runs it."""
        if taken_from(job) is None:
            return super().perform_job(job, queue, execution)
        started = self.started_in_advance
        if started is None:
            started = self.start_if_waiting(job, execution)
        if not started:
            self.log.info(
                "Worker %s: %s: job %s no longer waits (canceled, deleted, rescued or taken)",
                self.name,
                job.origin,
                job.id,
            )
            return False
        return super().perform_job(job, queue, execution)

    def start_if_waiting(self, job: Job, execution: Execution) -> bool:
        """What RQ's parent writes in `prepare_execution` and its horse in `prepare_job_execution`,
        in one script that first takes the job out of its intermediate list (`_START`), or out of
        its queue if it is still first there (`_START_FIRST`, for a job `peek` read), and checks it
        may still start.

        Returns:
            Whether the job was started.
        """
        script, keys, args = self._start_script_input(job, execution)
        return bool(script(keys=keys, args=args, client=self.connection))

    def _start_script_input(self, job: Job, execution: Execution) -> tuple[Script, list[str], list[Any]]:
        """The start script for this job, and its keys and arguments for this execution."""
        writes = self.connection.pipeline(transaction=False)  # records the commands (`_flat`)
        self.start_writes(job, execution, writes)
        queue_key = self.queue_class.redis_queue_namespace_prefix + job.origin
        taken = taken_from(job)
        # Hidden mechanism, named: redis-py's pipeline only records the commands RQ queued
        # (`command_stack`); `_flat` hands them to the start script, which replays them in Lua.
        if taken == HELD:
            keys = [IntermediateQueue.get_intermediate_queue_key(queue_key), job.key, execution.key]
            return _START, keys, [job.id, *_flat(writes)]
        keys = [*taken, queue_key, job.key, execution.key]
        return _START_FIRST, keys, [job.id, len(taken), *_flat(writes)]

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """In the horse, within RQ's `perform_job`: nothing left to send (`start_if_waiting` did it);
        RQ's for a job `jobs.worker.dequeue` did not take."""
        if taken_from(job) is None:
            super().prepare_job_execution(job, remove_from_intermediate_queue)
            return
        self.procline(f"Processing {job.func_name} from {job.origin} since {now().timestamp()}")

    def handle_execution_ended(self, job: Job, queue: Any, heartbeat_ttl: int) -> None:
        """RQ's, without its job heartbeat: the parent keeps heartbeats until the horse answers."""
        job.ended_at = now()

    def end_success(self, job: Job, queue: Any, execution: Execution, return_value: Any) -> None:
        """RQ's `_finalize_success` for a job that returned a result (not a `Retry`, not repeating),
        with the success callback's writes and the job's end in one script (module docstring); a
        job with dependents takes RQ's own end, which moves them before it deletes or ends the job."""
        self.handle_execution_ended(job, queue, job.success_callback_timeout)
        mark_finished(job, return_value)
        with self.connection.pipeline(transaction=False) as writes:
            # A callback that raises leaves its writes unsent: RQ fails the job instead.
            # Hidden mechanism, named: `joined_to` lends `writes` to our callbacks through a context
            # variable (jobs.callbacks._joined), so they queue their end writes here unsent.
            with joined_to(writes):
                execute_success_callback(job, self.death_penalty_class, return_value)
            callback_writes = _flat(writes)
            self.success_writes(job, execution, writes)
            end = callback_writes + _flat(writes)  # replayed by `_END` in Lua, never sent by the pipeline
        keys, args = end_once_input(job.key, execution.key, execution.id, end, [job.dependents_key])
        following = self.next_to_start()
        if following is None:
            ended = _END(keys=keys, args=args, client=self.connection)
        else:
            ended, following.started = self._end_and_start(keys, args, following.job, following.execution)
        if ended == NOT_OURS:  # outage hook: canceled, deleted or failed as lost meanwhile
            self.log.warning(
                "Worker %s: job %s is no longer started here: its end not written", self.name, job.id
            )
            return
        if ended:
            release_slot(job)
            self.log_success(job)
        else:
            if callback_writes:
                _RUN(args=callback_writes, client=self.connection)
            self.handle_job_success(job, queue, queue.started_job_registry, execution)
        job.send_webhooks(JobStatus.FINISHED)
        self.log_result(job, return_value)

    def _end_and_start(
        self, end_keys: list[Any], end: list[Any], next_job: Job, next_execution: Execution
    ) -> tuple[int, bool]:
        """This job's end (`_END`) and the next job's start (`_START_FIRST`) in one round trip; returns
        `_END`'s reply (1: this job's end was written; 0: not, it has dependents; NOT_OURS) and
        whether the next job started.
        When this raises, the horse sends the next job's start again on its own (a start its
        execution made already counts as started)."""
        script, keys, args = self._start_script_input(next_job, next_execution)
        with self.connection.pipeline(transaction=False) as both:
            # Script text: a script object in a pipeline costs a SCRIPT EXISTS round trip.
            both.eval(_END.script, len(end_keys), *end_keys, *end)
            both.eval(script.script, len(keys), *keys, *args)
            ended, started = both.execute()
        return ended, bool(started)


def _flat(pipeline: Any) -> list[Any]:
    """The commands queued on a pipeline (then emptied, never sent) as `_RUN_FROM` takes them."""
    args: list[Any] = []
    for command, _ in pipeline.command_stack:
        args += [len(command), *command]
    pipeline.reset()
    return args
