"""Every RQ internal `jobs.worker.Worker` relies on, in one place, each marked with the RQ source it
mirrors (rq 3.0.0; `jobs.worker.versions` refuses releases this was not checked against).

Three kinds, and nothing else in `jobs.worker` touches them:
- RQ's private attributes and methods (worker, job, execution), read and written only through
  `RQInternals` and the functions below;
- RQ code copied here and edited, because our worker sends RQ's writes inside its own scripts
  (`start_writes`, `success_writes`), keeps RQ's log lines, or swaps one step of RQ's
  maintenance (`clean_registries`);
- RQ's key layout that our Lua scripts read (`LUA_STARTABLE`, `LUA_JOB_OF_STARTED_MEMBER`).
"""

import os
from typing import Any

from rq import worker_registration
from rq.callbacks import execute_stopped_callback
from rq.executions import Execution, ExecutionRegistry
from rq.job import UNEVALUATED, Job, JobStatus, Retry
from rq.logutils import blue, green
from rq.registry import clean_registries
from rq.utils import now
from rq.worker import DequeueStrategy, WorkerStatus

# Lua: `startable(key)`, whether the job whose hash is at `key` may still start: its hash is there
# and its `status` field (rq/job.py Job.set_status) says it has neither started nor ended. RQ's
# worker runs any job it pops, whatever its status (a job pushed while `created` too).
LUA_STARTABLE = b"""
local function startable(key)
  local status = redis.call('HGET', key, 'status')
  return status and not ({started = 1, finished = 1, failed = 1, stopped = 1, canceled = 1})[status]
end
"""
# Lua: the job id of a StartedJobRegistry member `member`, `<job id>:<execution id>`
# (rq/executions.py Execution.composite_key).
LUA_JOB_OF_STARTED_MEMBER = b"(string.match(member, '^(.*):[^:]*$') or member)"


class RQInternals:
    """Mixin for RQ's `Worker` (before it in the bases): our names for the RQ internals the worker
    uses, and the RQ methods it copies and edits. `end_success` and `rescue_queue` are the
    worker's own (`jobs.worker.bookkeeping`, `jobs.worker`)."""

    # rq/worker/base.py BaseWorker._stop_requested: a warm shutdown was asked while busy.
    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    # BaseWorker._stopped_job_id: the job a stop command (send_stop_job_command) aims at.
    @property
    def stopping_job_id(self) -> str | None:
        return self._stopped_job_id

    def forget_stop(self) -> None:
        """Drop a stop that found nothing to kill (`_stopped_job_id`, as RQ's handle_job_failure)."""
        self._stopped_job_id = None

    # BaseWorker._horse_pid, which RQ's monitor, kill_horse and wait_for_horse read.
    def set_horse_pid(self, pid: int) -> None:
        self._horse_pid = pid

    # BaseWorker._ordered_queues: the queues in this worker's dequeue order.
    @property
    def queues_in_order(self) -> list:
        return self._ordered_queues

    # BaseWorker._dequeue_strategy: only the default keeps queues in priority order.
    @property
    def dequeues_by_priority(self) -> bool:
        return self._dequeue_strategy in (None, DequeueStrategy.DEFAULT)

    # BaseWorker._exc_handlers: handlers RQ calls, in order, for a job that raised.
    def add_first_exception_handler(self, handler: Any) -> None:
        self._exc_handlers.insert(0, handler)

    # BaseWorker._is_horse: set in RQ's horse after the fork (main_work_horse).
    def mark_horse(self) -> None:
        self._is_horse = True

    # BaseWorker._state: what get_state() answers; RQ's set_state also writes it to Redis.
    def note_busy(self) -> None:
        self._state = WorkerStatus.BUSY

    def subscribe_with(self, handlers: dict) -> None:
        """RQ's `BaseWorker.subscribe`, with more channels on the same connection."""
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload}, **handlers)
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=60, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def clean_registries(self) -> None:
        """RQ's `BaseWorker.clean_registries`, with `rescue_queue` in place of RQ's intermediate-list
        clean-up (`IntermediateQueue.cleanup`), which fails a job it finds there for a minute."""
        for queue in self.queues:
            if queue.acquire_maintenance_lock():
                self.log.info("Worker %s: cleaning registries for queue: %s", self.name, queue.name)
                clean_registries(queue, self._exc_handlers)
                worker_registration.clean_worker_registry(queue)
                self.rescue_queue(queue)
                queue.release_maintenance_lock()
        self.last_cleaned_at = now()

    def log_taken(self, job: Job, queue: Any) -> None:
        """What RQ's `dequeue_job_and_maintain_ttl` does with a job it took: the queue order, the
        server version, its log line."""
        self.reorder_queues(reference_queue=queue)
        job.redis_server_version = self.get_redis_server_version()
        if self.log_job_description:
            self.log.info(
                "Worker %s: %s: %s (%s)", self.name, green(queue.name), blue(job.description), job.id
            )
        else:
            self.log.info("Worker %s: %s: %s", self.name, green(queue.name), job.id)

    def start_writes(self, job: Job, execution: Execution, pipeline: Any) -> None:
        """What RQ writes as a job starts, on `pipeline`: `Execution.create` (rq/executions.py) and the
        rest of RQ's `prepare_execution` in the worker, then `prepare_job_execution` in the horse."""
        ttl = self.get_heartbeat_ttl(job)
        execution.save(ttl=ttl, pipeline=pipeline)
        ExecutionRegistry(job_id=job.id, connection=pipeline).add(
            execution=execution, ttl=ttl, pipeline=pipeline
        )
        job.started_job_registry.add_execution(execution, pipeline=pipeline, ttl=ttl, xx=False)
        pipeline.sadd(execution.worker_executions_key, execution.composite_key)
        pipeline.expire(execution.worker_executions_key, ttl + 60)
        self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
        self.heartbeat(ttl, pipeline=pipeline)
        job.heartbeat(now(), ttl, pipeline=pipeline)
        job.prepare_for_execution(self.name, pipeline=pipeline)
        pipeline.persist(job.key)

    def success_writes(self, job: Job, execution: Execution, pipeline: Any) -> None:
        """RQ's `BaseWorker.handle_job_success` writes for a job without dependents, on `pipeline`."""
        self.increment_successful_job_count(pipeline=pipeline)
        self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        if result_ttl != 0:
            job._handle_success(
                result_ttl,
                pipeline=pipeline,
                worker_name=self.name,
                execution_id=execution.id,
                execution_started_at=execution.created_at,
                execution_ended_at=job.ended_at,
            )
        job.cleanup(result_ttl, pipeline=pipeline, remove_from_queue=False)
        self.cleanup_execution(job, pipeline=pipeline, execution=execution)

    def log_success(self, job: Job) -> None:
        """The line RQ's `handle_job_success` logs once a job's end is stored."""
        taken = job.ended_at - job.started_at
        if self.log_job_description:
            self.log.info(
                "Successfully completed %s job in %ss on worker %s", job.description, taken, self.name
            )
        else:
            self.log.info("Successfully completed job %s in %ss on worker %s", job.id, taken, self.name)

    def log_result(self, job: Job, return_value: Any) -> None:
        """The lines RQ's `_finalize_success` logs after a job's end."""
        self.log.info("Worker %s: %s: %s (%s)", self.name, green(job.origin), blue("Job OK"), job.id)
        if return_value is not None:
            self.log.debug("Worker %s: result: %r", self.name, return_value)
        if not self.log_result_lifespan:
            return
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        if result_ttl == 0:
            self.log.info("Worker %s: job %s result discarded immediately", self.name, job.id)
        elif result_ttl > 0:
            self.log.info("Worker %s: job %s result is kept for %s seconds", self.name, job.id, result_ttl)
        else:
            self.log.info(
                "Worker %s: job %s result will never expire, clean up result key manually", self.name, job.id
            )

    def fail_dead_horse_job(self, job: Job, queue: Any, execution: Execution, death: tuple) -> None:
        """What RQ's `monitor_work_horse` does with the job of a horse that died: fail it with its
        "Work-horse terminated unexpectedly" text. `death` is `wait_for_horse()`'s answer."""
        retpid, ret_val, rusage = death
        job.ended_at = now()
        signal_msg = f" (signal {os.WTERMSIG(ret_val)})" if ret_val and os.WIFSIGNALED(ret_val) else ""
        exc_string = f"Work-horse terminated unexpectedly; waitpid returned {ret_val}{signal_msg}; "
        self.log.warning("Worker %s: job %s failed (%s)", self.name, job.id, exc_string)
        self.handle_work_horse_killed(job, retpid, ret_val, rusage)
        self.handle_job_failure(job, queue=queue, exc_string=exc_string, execution=execution)

    def _finalize_success(self, job: Job, queue: Any, execution: Execution, return_value: Any) -> None:
        """RQ's private hook for a job that returned: ours (`end_success`), except for a `Retry`
        result and a repeating job, which take RQ's own."""
        if isinstance(return_value, Retry) or job.repeats_left:
            super()._finalize_success(job, queue, execution, return_value)
        else:
            self.end_success(job, queue, execution, return_value)

    def end_stopped(self, job: Job, queue: Any, execution: Execution) -> None:
        """End a job a stop killed, as RQ's monitor does (`_handle_stopped_job`)."""
        self._handle_stopped_job(job, queue, execution)

    def _handle_stopped_job(self, job: Job, queue: Any, execution: Execution) -> None:
        """RQ's `BaseWorker._handle_stopped_job`, with the job's end stored before its stopped callback
        runs (RQ runs the callback first): a client that sees the final payload our callback
        publishes and asks again then finds the job ended. A raising callback is logged, as RQ does."""
        self.log.warning(
            "Worker %s: job %s stopped by user, moving job to FailedJobRegistry", self.name, job.id
        )
        self.handle_job_failure(
            job, queue=queue, exc_string="Job stopped by user, work-horse terminated.", execution=execution
        )
        try:
            execute_stopped_callback(job, self.death_penalty_class)
        except Exception:
            self.log.exception("Worker %s: stopped callback for job %s raised", self.name, job.id)


def mark_finished(job: Job, return_value: Any) -> None:
    """What RQ's `_finalize_success` sets on a job that returned, before its success callback runs
    (rq/job.py `Job._result`, `Job._status`)."""
    job._result = return_value
    job._status = JobStatus.FINISHED


def attach(execution: Execution, job: Job) -> None:
    """Give an execution the job object it runs (rq/executions.py `Execution._job`, which RQ's
    `prepare_execution` sets), so `get_current_job` needs no read."""
    execution._job = job


def job_from_state(job_class: type[Job], state: dict, connection: Any) -> Job:
    """The job `state_of()` described, on this process's Redis client (its serializer comes with it)."""
    job = job_class(connection=connection)
    job.__dict__.update(state)
    return job


def state_of(job: Job) -> dict:
    """The job object as the parent holds it, to send to the horse (saves the horse a read of its hash).

    A forking worker's horse gets the same: the parent's job object, copied by fork(). Left out:
    the Redis client, and RQ's "not yet decoded" marker (rq/job.py `UNEVALUATED`), which compares
    by identity (a pickled copy would not be it); the horse's fresh job has that marker already.
    """
    return {
        name: value
        for name, value in job.__dict__.items()
        if name != "connection" and value is not UNEVALUATED
    }
