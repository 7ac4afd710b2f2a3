"""A warm work horse: one forked child runs job after job, so a short job pays no fork.

`WarmHorse` is a mixin for RQ's forking `Worker` (put it first: `class W(WarmHorse, rq.Worker)`).
RQ's worker forks a horse per job; this one forks a horse once, sends it each job over a pipe
(the parent's job object, as fork() would have given it), and waits for its one-line answer
while it keeps RQ's heartbeats, as RQ's `monitor_work_horse` does. The horse runs RQ's own
`perform_job`, so results, retries, callbacks, job classes and timeouts (SIGALRM inside the
horse) are RQ's. The worker's own heartbeats go in one round trip, RQ's three around each job
are folded into one, and `rq suspend` is checked once a second rather than before every job.

What stays as safe as the forking worker, and how:
- A stop (`send_stop_job_command`, or RQ's stop-execution command) kills the horse's process
  group while it runs that job, and only then: a stop that arrives after its job ended kills
  nothing. The job ends `stopped` through RQ's own path; the next job gets a fresh horse.
- A horse that dies mid-job (`os._exit`, a segfault, the OOM killer) fails that job alone with
  RQ's "Work-horse terminated unexpectedly"; the worker forks a new horse for the next one.
- A job still running 60 s past its timeout (`HORSE_HARD_KILL_GRACE_S`) is killed from the
  parent, as RQ does, and fails as a horse that died.
- The horse retires (exits, to be forked again) after a timed-out job, after
  `HORSE_MAX_JOBS` jobs, or once its resident memory passes `HORSE_MAX_RSS_MIB` (read after a
  job, at most once a second).
- Warm shutdown (SIGTERM) finishes the running job, then closes the pipe: the idle horse exits.
  A second SIGTERM kills the horse with the worker, as RQ's cold shutdown does. A horse whose
  worker is SIGKILLed finishes its job, reads the closed pipe, and exits.
"""

import ctypes
import logging
import os
import random
import resource
import signal
import threading
import time
from multiprocessing.connection import Connection, Pipe
from multiprocessing.sharedctypes import RawValue
from typing import Any

from rq.exceptions import InvalidJobOperation
from rq.executions import Execution
from rq.job import UNEVALUATED, Job, JobStatus
from rq.timeouts import JobTimeoutException
from rq.utils import now
from rq.worker.base import SHUTDOWN_SIGNAL
from rq.worker.base import logger as rq_logger

log = logging.getLogger(__name__)

# A horse is forked again after this many jobs, or once its resident set passes this size.
HORSE_MAX_JOBS = int(os.environ.get("HORSE_MAX_JOBS", "1000"))
HORSE_MAX_RSS_MIB = int(os.environ.get("HORSE_MAX_RSS_MIB", "512"))
# The parent kills a horse this long after its job's timeout (RQ's monitor_work_horse: 60 s).
HARD_KILL_GRACE_S = int(os.environ.get("HORSE_HARD_KILL_GRACE_S", "60"))
# A heartbeat this soon after one with at least the same TTL is folded into it; `rq suspend` is
# checked at most this often.
HEARTBEAT_FOLD_S = 1.0
# The horse reads its resident memory after a job at most this often (seconds): a read costs more
# than a short job's bookkeeping.
MEMORY_READ_EVERY_S = 1.0
# How long teardown waits for an idle horse to exit before killing it.
HORSE_EXIT_WAIT_S = 5.0
_PAGE_MIB = resource.getpagesize() / (1024 * 1024)


class WarmHorse:
    """Mixin for `rq.Worker`: a work horse forked once and reused for many jobs (module docstring)."""

    horse_max_jobs = HORSE_MAX_JOBS
    horse_max_rss_mib = HORSE_MAX_RSS_MIB

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Guards which job the horse runs against the pub/sub thread's stop commands; re-entrant
        # because a cold-shutdown signal handler may kill the horse while the main thread holds it.
        self._horse_lock = threading.RLock()
        self._horse_job_id: str | None = None
        self._to_horse: Connection | None = None
        self._from_horse: Connection | None = None
        self._last_heartbeat_sent = (float("-inf"), 0)
        self._suspension_checked_at = float("-inf")
        # Jobs sent to the current horse, and (in memory shared with it) jobs it has taken.
        self._sent_to_horse = 0
        self._taken_by_horse: Any = None

    # The parent's side.

    def execute_job(self, job: Job, queue: Any) -> None:
        """Run one job on the warm horse (forking it first when there is none) and watch it."""
        execution = self.prepare_execution(job)
        message = (state_of(job), queue.name, execution.id, execution.created_at)
        for last in (False, True):
            with self._horse_lock:
                self._horse_job_id = job.id
            if not self._send_to_horse(message):
                self._discard_horse()
                self._fork_warm_horse()
                self._send_to_horse(message)
            if self._monitor_warm_horse(job, queue, execution, resend_unstarted=not last):
                return

    def while_horse_works(self, elapsed_s: float) -> float | None:
        """Called when the horse has been sent a job (`elapsed_s` 0), then, while it works on it,
        again after the seconds this returns (None: not again). `jobs.worker.Worker` takes its
        next job here."""
        return None

    def _send_to_horse(self, message: tuple) -> bool:
        """Hand a job to the horse; False when there is no live horse to take it."""
        if not self.horse_pid or self._to_horse is None:
            return False
        try:
            self._to_horse.send(message)
        except (BrokenPipeError, OSError):
            # It died while idle (killed from outside): the next horse takes the job.
            return False
        self._sent_to_horse += 1
        return True

    def _fork_warm_horse(self) -> None:
        """Fork a horse with a pipe each way; the horse keeps only its own ends."""
        jobs_in, jobs_out = Pipe(duplex=False)
        replies_in, replies_out = Pipe(duplex=False)
        self._taken_by_horse, self._sent_to_horse = RawValue(ctypes.c_ulonglong, 0), 0
        os.environ["RQ_WORKER_ID"] = self.name
        child_pid = os.fork()
        if child_pid == 0:
            jobs_out.close()
            replies_in.close()
            try:
                os.setpgrp()
                self._warm_horse_main(jobs_in, replies_out)
            finally:
                os._exit(1)  # the loop exits by itself; this stops anything raised reaching the worker's code
        jobs_in.close()
        replies_out.close()
        self._to_horse, self._from_horse = jobs_out, replies_in
        self._horse_pid = child_pid
        self.procline(f"Forked warm horse {child_pid}")

    def _monitor_warm_horse(self, job: Job, queue: Any, execution: Execution, resend_unstarted: bool) -> bool:
        """Wait for the horse's answer, with RQ's heartbeats and hard kill; handle a horse that died.

        Returns:
            False when the horse died before it took the job (killed while idle) and
            `resend_unstarted` is set: send it again.
        """
        job.started_at = now()
        timeout = job.timeout or self.queue_class.DEFAULT_TIMEOUT
        sent_at = time.monotonic()
        beat_at = sent_at + self.job_monitoring_interval
        call_at = _later(sent_at, self.while_horse_works(0.0))
        reply = None
        while reply is None:
            try:
                if self._from_horse.poll(max(0.0, min(beat_at, call_at) - time.monotonic())):
                    with self._horse_lock:
                        # From here a stop command finds no job in the horse and kills nothing.
                        self._horse_job_id = None
                    reply = self._from_horse.recv()
                    continue
            except (EOFError, OSError):
                break  # the horse died
            if time.monotonic() >= call_at:
                call_at = _later(time.monotonic(), self.while_horse_works(time.monotonic() - sent_at))
            if time.monotonic() < beat_at:
                continue
            beat_at = time.monotonic() + self.job_monitoring_interval
            working_s = (now() - job.started_at).total_seconds()
            if timeout != -1 and working_s > timeout + HARD_KILL_GRACE_S:
                self.heartbeat(self.job_monitoring_interval + 60)
                self.kill_horse()
                break
            self.maintain_heartbeats(job, execution)
        with self._horse_lock:
            self._horse_job_id = None
        if reply is not None:
            # The horse's cleanup_execution() popped only its own copy of `executions`.
            self.executions.pop(execution.id, None)
            if reply.get("retire") or self._stopped_job_id == job.id:
                # A stop that raced the job's end may have killed the horse after it answered.
                self._stopped_job_id = None
                self._discard_horse()
            return True
        return self._handle_dead_horse(job, queue, execution, resend_unstarted)

    def _handle_dead_horse(self, job: Job, queue: Any, execution: Execution, resend_unstarted: bool) -> bool:
        """A horse died with a job: RQ's stopped or "terminated unexpectedly" path, as its monitor.

        Returns:
            False when the job never started (the horse died idle) and `resend_unstarted` is set.
        """
        retpid, ret_val, rusage = self.wait_for_horse()
        self._close_pipes()
        self._horse_pid = 0
        try:
            job_status = job.get_status()
        except InvalidJobOperation:
            self.executions.pop(execution.id, None)
            return True  # the job ended and expired already
        taken = self._taken_by_horse.value >= self._sent_to_horse
        if resend_unstarted and self._stopped_job_id != job.id and not taken:
            self.log.warning("Worker %s: horse %s died before job %s started", self.name, retpid, job.id)
            return False
        self.executions.pop(execution.id, None)
        if self._stopped_job_id == job.id:
            self._handle_stopped_job(job, queue, execution)
        elif job_status not in (JobStatus.FINISHED, JobStatus.FAILED):
            job.ended_at = now()
            signal_msg = f" (signal {os.WTERMSIG(ret_val)})" if ret_val and os.WIFSIGNALED(ret_val) else ""
            exc_string = f"Work-horse terminated unexpectedly; waitpid returned {ret_val}{signal_msg}; "
            self.log.warning("Worker %s: job %s failed (%s)", self.name, job.id, exc_string)
            self.handle_work_horse_killed(job, retpid, ret_val, rusage)
            self.handle_job_failure(job, queue=queue, exc_string=exc_string, execution=execution)
        return True

    def kill_horse(self, sig: signal.Signals = SHUTDOWN_SIGNAL) -> None:
        """Kill the horse, unless this is a stop for a job it no longer runs (it is idle or on the next)."""
        with self._horse_lock:
            stopping = self._stopped_job_id
            if stopping is not None and stopping != self._horse_job_id:
                self.log.info("Worker %s: job %s has ended, stop ignored", self.name, stopping)
                self._stopped_job_id = None
                return
            if self.horse_pid:
                super().kill_horse(sig)

    def _discard_horse(self) -> None:
        """Let the horse go: close its job pipe (an idle horse exits on that), reap it, kill a laggard."""
        if self._to_horse is not None:
            self._to_horse.close()
            self._to_horse = None
        if self.horse_pid:
            try:
                # The reply pipe reads as closed once the horse has exited.
                replies = self._from_horse
                lingering = replies is not None and not _closed_within(replies, HORSE_EXIT_WAIT_S)
            finally:
                self._close_pipes()
            if lingering:
                super().kill_horse()
            self.wait_for_horse()
            self._horse_pid = 0
        self._close_pipes()

    def _close_pipes(self) -> None:
        for end in (self._to_horse, self._from_horse):
            if end is not None:
                end.close()
        self._to_horse = self._from_horse = None

    def teardown(self) -> None:
        """Stop the idle horse (warm shutdown ends here), then RQ's teardown."""
        if not self.is_horse:
            self._discard_horse()
        super().teardown()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's heartbeat in one round trip, and none when the last one, under a second ago, covers it.

        RQ's loop sends three in a row around each job (after it, before and after the dequeue);
        a worker key kept for minutes loses nothing when one of those is folded into the last.
        A heartbeat inside a pipeline (RQ's job bookkeeping) always goes.
        """
        ttl = timeout or self.worker_ttl + 60
        if pipeline is not None:
            # Counted as sent: RQ sends its pipelines. A shorter TTL (its job heartbeats set one)
            # makes the next heartbeat here go out.
            self._last_heartbeat_sent = (time.monotonic(), ttl)
            return super().heartbeat(ttl, pipeline=pipeline)
        sent_at, sent_ttl = self._last_heartbeat_sent
        if time.monotonic() - sent_at < HEARTBEAT_FOLD_S and sent_ttl >= ttl:
            return None
        with self.connection.pipeline(transaction=False) as own:
            super().heartbeat(ttl, pipeline=own)
            own.execute()
        self._last_heartbeat_sent = (time.monotonic(), ttl)
        return None

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's check for `rq suspend`, at most once a second: RQ asks before every job."""
        if time.monotonic() - self._suspension_checked_at < HEARTBEAT_FOLD_S:
            return
        super().check_for_suspension(burst)
        self._suspension_checked_at = time.monotonic()

    # The horse's side.

    def _warm_horse_main(self, jobs_in: Connection, replies_out: Connection) -> None:
        """The horse's loop: run each job it is sent, answer, exit on a closed pipe or when retiring."""
        random.seed()
        self.setup_work_horse_signals()
        self._is_horse = True
        self.log = rq_logger
        timed_out: list[bool] = [False]

        def note_timeout(job: Job, exc_type: type, *_: Any) -> None:
            timed_out[0] = timed_out[0] or issubclass(exc_type, JobTimeoutException)

        self._exc_handlers.insert(0, note_timeout)
        served, memory_read_at = 0, float("-inf")
        while True:
            try:
                job_state, queue_name, execution_id, created_at = jobs_in.recv()
            except (EOFError, OSError):
                os._exit(0)
            self._taken_by_horse.value += 1
            try:
                self._run_in_horse(job_state, queue_name, execution_id, created_at)
            except BaseException:
                os._exit(1)
            served += 1
            retire = timed_out[0] or served >= self.horse_max_jobs
            if not retire and time.monotonic() - memory_read_at >= MEMORY_READ_EVERY_S:
                memory_read_at = time.monotonic()
                retire = _rss_mib() > self.horse_max_rss_mib
            try:
                replies_out.send({"retire": retire})
            except OSError:
                os._exit(0)
            if retire:
                os._exit(0)

    def _run_in_horse(self, job_state: dict, queue_name: str, execution_id: str, created_at: Any) -> None:
        """Rebuild the job, its queue and its execution in the horse and run RQ's perform_job."""
        job = job_from_state(self.job_class, job_state, self.connection, self.serializer)
        os.environ["RQ_JOB_ID"] = job.id
        queue = next(queue for queue in self.queues if queue.name == queue_name)
        execution = Execution(execution_id, job.id, connection=self.connection, worker_name=self.name)
        execution.created_at = execution.last_heartbeat = created_at
        execution._job = job
        self.executions.clear()
        self.executions[execution.id] = execution
        self.perform_job(job, queue, execution)


def job_from_state(job_class: type[Job], state: dict, connection: Any, serializer: Any = None) -> Job:
    """The job `state_of()` described, on this process's Redis client."""
    job = job_class(connection=connection, serializer=serializer)
    job.__dict__.update(state)
    return job


def state_of(job: Job) -> dict:
    """The job object as the parent holds it, to send to the horse (saves the horse a read of its hash).

    A forking worker's horse gets the same: the parent's job object, copied by fork(). Left out:
    the Redis client, and RQ's "not yet decoded" marker, which compares by identity (a pickled
    copy would not be it); the horse's fresh job has that marker already.
    """
    return {
        name: value
        for name, value in job.__dict__.items()
        if name != "connection" and value is not UNEVALUATED
    }


def _later(now_s: float, after_s: float | None) -> float:
    """The monotonic time `after_s` seconds from `now_s` (never, for None)."""
    return float("inf") if after_s is None else now_s + after_s


def _closed_within(end: Connection, timeout_s: float) -> bool:
    """Whether the writer of `end` closes it within `timeout_s` (anything it still sends is dropped)."""
    try:
        while end.poll(timeout_s):
            end.recv()
    except (EOFError, OSError):
        return True
    return False


def _rss_mib() -> float:
    """This process's resident set now, in MiB (Linux /proc; 0 where it is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE_MIB
    except (OSError, IndexError, ValueError):
        return 0.0
