"""A warm work horse: one forked child runs job after job, so a short job pays no fork.

`WarmHorse` is a mixin for RQ's forking `Worker` (put it first: `class W(WarmHorse, rq.Worker)`).
RQ's worker forks a horse per job; this one forks a horse once, sends it each job over a pipe
(the parent's job object, as fork() would have given it), and waits for its one-line answer
while it keeps RQ's heartbeats, as RQ's `monitor_work_horse` does. The horse runs RQ's own
`perform_job`, so results, retries, callbacks, job classes and timeouts (SIGALRM inside the
horse) are RQ's. The worker's own heartbeats go in one round trip, RQ's three around each job
are folded into one, and `rq suspend` is checked once a second rather than before every job.

The parent may hand the horse its next job while the horse runs one (`hand_to_horse`): a job it
has only read (`jobs.worker.dequeue.peek`). As its job succeeds the horse starts the next in the round
trip that ends the one before (`jobs.worker.bookkeeping`), only if that job is still the one RQ's
dequeue would take, then answers for the first and runs the next at once, so back-to-back short
jobs wait on no message between processes and still start in RQ's order. A job handed so that
waited past `handoff_max_age_s`, or that the horse could not start, stays in its queue for the
parent's next dequeue. Starting it and killing for a stop exclude each other through a lock in
memory the two processes share, which also tells the parent which job the horse took and runs.

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
- Warm shutdown (SIGTERM) finishes the running job (and one the horse has taken after it),
  then closes the pipe: the idle horse exits. A second SIGTERM kills the horse with the worker,
  as RQ's cold shutdown does. A horse whose worker is SIGKILLed finishes its job (and one it
  has started with its end), reads the closed pipe, and exits.
"""

import logging
import os
import pickle
import random
import resource
import signal
import time
from contextlib import nullcontext
from multiprocessing.connection import Connection, Pipe
from typing import Any

from rq.exceptions import InvalidJobOperation
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.timeouts import JobTimeoutException
from rq.utils import now
from rq.worker.base import SHUTDOWN_SIGNAL
from rq.worker.base import logger as rq_logger

from jobs.worker.handoff import Handed, Handoff, TakenJob
from jobs.worker.rq_adapter import attach, job_from_state, state_of

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
    # A job sent early waiting in the pipe longer than this (seconds) is not taken (None: any).
    handoff_max_age_s: float | None = None
    # In the horse, for the job it runs: whether it was started with the end of the one before
    # (`TakenJob.started`); None: its own start runs first.
    started_in_advance: bool | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._to_horse: Connection | None = None
        self._from_horse: Connection | None = None
        self._last_heartbeat_sent = (float("-inf"), 0)
        self._suspension_checked_at = float("-inf")
        # The current horse's shared state, the number of the last job sent to it, and which job
        # each unanswered number is.
        self._handoff: Handoff | None = None
        self._sent_to_horse = 0
        self._sent_jobs: dict[int, str] = {}
        self._handed: Handed | None = None
        self._last_death: tuple[Any, Any, Any] = (None, None, None)
        self._killed_here = False  # whether this worker killed its current horse
        self._jobs_in: Connection | None = None  # the horse's end of its job pipe

    # The parent's side.

    def execute_job(self, job: Job, queue: Any) -> None:
        """Run one job on the warm horse (forking it first when there is none) and watch it; a job
        handed to the horse earlier (`hand_to_horse`) is only watched."""
        handed, self._handed = self._handed, None
        if handed is not None and handed.job is job and handed.handoff is self._handoff:
            self._monitor_warm_horse(job, queue, handed.execution, handed.number, False, handed.handed_at)
            return
        execution = self.prepare_execution(job)
        for last in (False, True):
            number = self._send_to_horse(job, queue, execution)
            if number is None:
                self._discard_horse()
                self._fork_warm_horse()
                number = self._send_to_horse(job, queue, execution)
            if self._monitor_warm_horse(job, queue, execution, number, not last, time.monotonic()):
                return

    def hand_to_horse(self, job: Job, queue: Any) -> Handed | None:
        """Send the horse its next job while it runs this one: as this one succeeds it starts the
        next in the same round trip (`jobs.worker.bookkeeping`), if that job may still start then. Whether
        it did, the horse says before it answers for this one (`taken_handed`). None when there is
        no live horse to send to."""
        execution = self.prepare_execution(job)
        number = self._send_to_horse(job, queue, execution, early=True)
        if number is None:
            self.executions.pop(execution.id, None)
            return None
        self._handed = Handed(job, queue, execution, number, time.monotonic(), self._handoff)
        return self._handed

    def taken_handed(self) -> Handed | None:
        """The job handed to the horse, if the horse took it (it runs or ran it, or died starting
        it: `execute_job` watches it); else forgotten, for it is still in its queue.

        Called once the horse has answered for the job before, or died: it has decided by then.
        """
        handed, self._handed = self._handed, None
        if handed is None:
            return None
        current = handed.handoff is self._handoff
        dead_while_starting = not self.horse_pid and handed.handoff.running.value == handed.number
        if current and (handed.taken or dead_while_starting):
            self._handed = handed
            return handed
        self._sent_jobs.pop(handed.number, None)
        self.executions.pop(handed.execution.id, None)
        return None

    def while_horse_works(self, elapsed_s: float) -> float | None:
        """Called when the horse has been sent a job (`elapsed_s` 0), then, while it works on it,
        again after the seconds this returns (None: not again). `jobs.worker.Worker` takes its
        next job here."""
        return None

    def _send_to_horse(self, job: Job, queue: Any, execution: Execution, early: bool = False) -> int | None:
        """Send a job to the horse; its number, or None when there is no live horse to take it.

        An `early` one (sent while the horse runs another) is dated: the horse does not take it
        once it has waited `handoff_max_age_s`.
        """
        if not self.horse_pid or self._to_horse is None:
            return None
        number = self._sent_to_horse + 1
        handed_at = time.monotonic() if early else None
        message = (number, handed_at, state_of(job), queue.name, execution.id, execution.created_at)
        try:
            self._to_horse.send_bytes(pickle.dumps(message))
        except (BrokenPipeError, OSError):
            # It died while idle (killed from outside): the next horse takes the job.
            return None
        self._sent_to_horse = number
        self._sent_jobs[number] = job.id
        return number

    def _fork_warm_horse(self) -> None:
        """Fork a horse with a pipe each way; the horse keeps only its own ends."""
        jobs_in, jobs_out = Pipe(duplex=False)
        replies_in, replies_out = Pipe(duplex=False)
        self._handoff, self._sent_to_horse, self._sent_jobs = Handoff(), 0, {}
        self._killed_here = False
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
        self.set_horse_pid(child_pid)
        self.procline(f"Forked warm horse {child_pid}")

    def _monitor_warm_horse(
        self, job: Job, queue: Any, execution: Execution, number: int, resend_unstarted: bool, sent_at: float
    ) -> bool:
        """Wait for the horse's answer on job `number`, with RQ's heartbeats and hard kill; handle a
        horse that died.

        Returns:
            False when the horse died before it took the job (killed while idle) and
            `resend_unstarted` is set: send it again.
        """
        job.started_at = now()
        timeout = job.timeout or self.queue_class.DEFAULT_TIMEOUT
        beat_at = sent_at + self.job_monitoring_interval
        call_at = _later(sent_at, self.while_horse_works(0.0))
        reply = None
        while reply is None:
            try:
                if self._from_horse is None:
                    break  # the horse that was sent the job has died already
                if self._from_horse.poll(max(0.0, min(beat_at, call_at) - time.monotonic())):
                    reply = pickle.loads(self._from_horse.recv_bytes())
                    self._sent_jobs.pop(reply["number"], None)
                    if reply["number"] != number:
                        reply = None  # an earlier job's answer
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
        if reply is not None:
            # The horse's cleanup_execution() popped only its own copy of `executions`.
            self.executions.pop(execution.id, None)
            if self.stopping_job_id == job.id:
                # A stop for this job that came as it ended: it killed nothing (`kill_horse`).
                self.forget_stop()
            if reply["retire"]:
                self._discard_horse()
            return True
        return self._handle_dead_horse(job, queue, execution, number, resend_unstarted)

    def _handle_dead_horse(
        self, job: Job, queue: Any, execution: Execution, number: int, resend_unstarted: bool
    ) -> bool:
        """A horse died with job `number` sent: RQ's stopped or "terminated unexpectedly" path, as
        its monitor.

        Returns:
            False when the job never started (the horse died before taking it) and
            `resend_unstarted` is set.
        """
        handoff = self._handoff
        if self.horse_pid:
            self._last_death = self.wait_for_horse()
            self._close_pipes()
            self.set_horse_pid(0)
        retpid = self._last_death[0]
        try:
            job_status = job.get_status()
        except InvalidJobOperation:
            self.executions.pop(execution.id, None)
            return True  # the job ended and expired already
        taken = handoff is not None and handoff.took(number)
        if not taken and not resend_unstarted and not self.connection.exists(execution.key):
            # A job handed early that the horse died before starting: still first in its queue.
            self.log.warning("Worker %s: horse %s died before job %s started", self.name, retpid, job.id)
            self.executions.pop(execution.id, None)
            if self.stopping_job_id == job.id:
                self.forget_stop()
            return True
        # A horse this worker killed (RQ's kill-horse command, a stop) fails its job, as RQ's does.
        if resend_unstarted and self.stopping_job_id != job.id and not taken and not self._killed_here:
            self.log.warning("Worker %s: horse %s died before job %s started", self.name, retpid, job.id)
            return False
        self.executions.pop(execution.id, None)
        if self.stopping_job_id == job.id:
            self.end_stopped(job, queue, execution)
        elif job_status not in (JobStatus.FINISHED, JobStatus.FAILED):
            self.fail_dead_horse_job(job, queue, execution, self._last_death)
        return True

    def kill_horse(self, sig: signal.Signals = SHUTDOWN_SIGNAL) -> None:
        """Kill the horse, unless this is a stop for a job it does not run (it is idle, or the job
        has ended, or not started); the horse cannot take its next job while this decides."""
        handoff = self._handoff
        with handoff.locked() if handoff is not None else nullcontext():
            stopping = self.stopping_job_id
            running = self._sent_jobs.get(handoff.running.value) if handoff is not None else None
            if stopping is not None and stopping != running:
                self.log.info("Worker %s: job %s is not running here, stop ignored", self.name, stopping)
                self.forget_stop()
                return
            if self.horse_pid:
                self._killed_here = True
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
            self.set_horse_pid(0)
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
        self.mark_horse()
        self.log = rq_logger
        self.become_horse(jobs_in)
        while True:
            current, self._next_job = self._next_job, None
            if current is None:
                try:
                    message = pickle.loads(jobs_in.recv_bytes())
                except (EOFError, OSError):
                    os._exit(0)
                if message[1] is not None:
                    continue  # a job handed early, not started with the end of the one before
                current = self._take(message)
            self.started_in_advance = current.started
            try:
                os.environ["RQ_JOB_ID"] = current.job.id
                self.executions.clear()
                self.executions[current.execution.id] = current.execution
                self.perform_job(current.job, current.queue, current.execution)
                if self._next_job is not None:
                    self._settle(self._next_job)
            except BaseException:
                os._exit(1)
            retire = self._next_job is None and self._retiring()
            self._served += 1
            if self._next_job is None:
                with self._handoff.locked():
                    self._handoff.running.value = 0
            try:
                replies_out.send_bytes(pickle.dumps({"number": current.number, "retire": retire}))
            except OSError:
                # The worker is gone. A next job started already runs first: it would be left started.
                if self._next_job is None:
                    os._exit(0)
            if retire:
                os._exit(0)

    def become_horse(self, jobs_in: Connection) -> None:
        """The horse's own state: its end of the job pipe, and what `_retiring` counts."""
        self._jobs_in = jobs_in
        self._timed_out, self._served, self._memory_read_at, self._too_big = False, 0, float("-inf"), False
        self._next_job: TakenJob | None = None

        def note_timeout(job: Job, exc_type: type, *_: Any) -> None:
            self._timed_out = self._timed_out or issubclass(exc_type, JobTimeoutException)

        self.add_first_exception_handler(note_timeout)

    def next_to_start(self) -> "TakenJob | None":
        """In the horse, as its job succeeds: the job the parent handed it early, when it is not
        retiring and the job was handed under `handoff_max_age_s` ago. From here a stop for it
        kills the horse; its start goes with this job's end (`jobs.worker.bookkeeping`), which sets its
        `started`; `_settle` then says whether the horse took it."""
        if self._jobs_in is None or self._retiring():
            return None
        message = None
        try:
            while self._jobs_in.poll(0):
                message = pickle.loads(self._jobs_in.recv_bytes())
        except (EOFError, OSError):
            return None
        max_age_s = self.handoff_max_age_s
        if message is None or (max_age_s is not None and time.monotonic() - message[1] > max_age_s):
            return None
        with self._handoff.locked():
            self._handoff.running.value = message[0]
        self._next_job = TakenJob(message[0], *self._rebuild(message))
        return self._next_job

    def _settle(self, following: "TakenJob") -> None:
        """Whether the horse took the job handed early (`next_to_start`): only if it started. A start
        whose reply was lost is sent again here (a start its execution made already counts)."""
        if following.started is None:
            try:
                following.started = self.start_if_waiting(following.job, following.execution)
            except Exception:  # Redis is away: the job stays where it was, for the parent to take
                log.warning("Horse: could not start job %s", following.job.id, exc_info=True)
                following.started = False
        with self._handoff.locked():
            if following.started:
                self._handoff.taken.value = following.number
            else:
                self._handoff.running.value = 0
                self._next_job = None

    def _take(self, message: tuple) -> "TakenJob":
        """Take a job the parent sent to the idle horse."""
        with self._handoff.locked():
            self._handoff.taken.value = self._handoff.running.value = message[0]
        return TakenJob(message[0], *self._rebuild(message))

    def _retiring(self) -> bool:
        """Whether the horse exits after its current job: it timed out, it has run `horse_max_jobs`,
        or its resident memory passes `horse_max_rss_mib` (read at most once a second)."""
        if self._timed_out or self._served + 1 >= self.horse_max_jobs:
            return True
        if time.monotonic() - self._memory_read_at >= MEMORY_READ_EVERY_S:
            self._memory_read_at = time.monotonic()
            self._too_big = _rss_mib() > self.horse_max_rss_mib
        return self._too_big

    def _rebuild(self, message: tuple) -> tuple[Job, Any, Execution]:
        """The job, its queue and its execution a message describes, on the horse's Redis client."""
        _, _, job_state, queue_name, execution_id, created_at = message
        job = job_from_state(self.job_class, job_state, self.connection)
        queue = next(queue for queue in self.queues if queue.name == queue_name)
        execution = Execution(execution_id, job.id, connection=self.connection, worker_name=self.name)
        execution.created_at = execution.last_heartbeat = created_at
        attach(execution, job)
        return job, queue, execution


def _later(now_s: float, after_s: float | None) -> float:
    """The monotonic time `after_s` seconds from `now_s` (never, for None)."""
    return float("inf") if after_s is None else now_s + after_s


def _closed_within(end: Connection, timeout_s: float) -> bool:
    """Whether the writer of `end` closes it within `timeout_s` (anything it still sends is dropped)."""
    try:
        while end.poll(timeout_s):
            end.recv_bytes()
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
