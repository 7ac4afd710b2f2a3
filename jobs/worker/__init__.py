"""The worker class the stock CLI loads: `rq worker -w jobs.worker.Worker` (the Procfile's worker).

It is RQ's forking `Worker` with a reliable dequeue over several queues (`jobs.worker.dequeue`):
- jobs are taken with `jobs.worker.dequeue.pop` (from queues of any class), so a taken job waits in
  its queue's intermediate list until the script that registers it as started
  (`jobs.worker.bookkeeping`) also removes it from there;
- when every queue is empty it waits for a wake-up published by enqueues (on the pub/sub
  connection RQ's worker already holds for its commands), looking again every `FALLBACK_S`;
- every `RESCUE_EVERY_S` while idle or between jobs, and once at start, it puts jobs stranded by
  dead workers back at the front of their queues (`rescue_stranded`).
Jobs run in a warm work horse (`jobs.worker.horse.WarmHorse`): forked once, reused for many jobs, forked
again after a stop, a crash, a timeout, `HORSE_MAX_JOBS` jobs or `HORSE_MAX_RSS_MIB`. A job's
bookkeeping takes one round trip to start it and one to end a success (`jobs.worker.bookkeeping`);
the worker is marked idle only when it finds every queue empty, not between back-to-back jobs.
While the horse runs a job the worker reads the next one (`while_horse_works`) and hands it to
the horse, which starts it with the end of the job before if it is still the job RQ's dequeue
would take then (`WarmHorse.hand_to_horse`), so back-to-back short jobs cost no dequeue round
trip and no wait between them, and jobs start in RQ's order. A job the horse does not start so
stays in its queue.
"""

import inspect
import threading
import time

import redis
from rq import Queue
from rq.job import Job
from rq.worker import WorkerStatus
from rq.worker.worker_classes import Worker as StockWorker

from jobs.keys import wake_channel
from jobs.outage import RidesOutages
from jobs.worker.bookkeeping import Bookkeeping
from jobs.worker.dequeue import (
    FALLBACK_S,
    RESCUE_EVERY_S,
    peek,
    pop,
    rescue_stranded,
)
from jobs.worker.horse import WarmHorse
from jobs.worker.rq_adapter import RQInternals
from jobs.worker.versions import check_rq_version

# A job handed to the horse early is started only if it was read this recently (after `rq suspend`,
# a SIGSTOP or a long job, the parent's next dequeue takes it instead).
PREFETCH_MAX_AGE_S = 1.0


class Worker(RidesOutages, Bookkeeping, WarmHorse, RQInternals, StockWorker):
    """RQ's forking worker: a warm work horse, a reliable multi-queue dequeue, stranded jobs rescued,
    each job's bookkeeping in two round trips, Redis outages ridden out (`jobs.outage`)."""

    handoff_max_age_s = PREFETCH_MAX_AGE_S

    def __init__(self, *args, **kwargs):
        check_rq_version()
        super().__init__(*args, **kwargs)
        self._wake = threading.Event()
        self._rescued_at: float | None = None
        self._hand_early = True
        self._take_early = True  # off from teardown until the next `work()`

    def work(self, *args, **kwargs) -> bool:
        """RQ's loop. With `max_jobs` no job is handed to the horse early: RQ's loop may end before it."""
        self._hand_early = (
            inspect.signature(StockWorker.work).bind(self, *args, **kwargs).arguments.get("max_jobs") is None
        )
        self._take_early = True
        return super().work(*args, **kwargs)

    def subscribe(self) -> None:
        """Subscribe to RQ's command channel and to each queue's wake channel, on one connection."""
        self.subscribe_with({wake_channel(queue.name): self._woken for queue in self.queues})

    def _woken(self, message) -> None:
        self._wake.set()

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None):
        """Take the next job as RQ's does, with `jobs.worker.dequeue.pop` and wake-ups instead of BLPOP.

        Returns:
            (job, queue), or None in burst mode with every queue empty, after `max_idle_time`, or
            once a warm shutdown was asked.
        """
        backoff_s = 1.0
        idle_since = time.monotonic()
        beat_due = 0.0
        result = None
        while True:
            # A warm shutdown asked while the worker was still busy (RQ's signal handler raises
            # only once it is idle) ends the wait here, without taking another job.
            if self.stop_requested:
                break
            try:
                if time.monotonic() >= beat_due:  # as often as RQ's own (one BLPOP timeout)
                    self.heartbeat()
                    beat_due = time.monotonic() + self.dequeue_timeout
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                self.rescue_if_due()
                self._wake.clear()  # before looking: a wake-up from now on ends the wait below
                handed = self.taken_handed()  # started by the horse with the job before
                result = (handed.job, handed.queue) if handed else self._pop()
                if result is not None:
                    self.log_taken(*result)
                    break
                if self.get_state() != WorkerStatus.IDLE:
                    self.set_state(WorkerStatus.IDLE)
                    self.procline("Listening on " + ",".join(self.queue_names()))
                if timeout is None:
                    break
                if max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time:
                    break
                if not self.stop_requested:
                    self._wake.wait(FALLBACK_S)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                self.log.error(
                    "Worker %s: could not connect to Redis instance: %s retrying in %d seconds...",
                    self.name,
                    exc,
                    backoff_s,
                )
                time.sleep(backoff_s)
                backoff_s = min(backoff_s * self.exponential_backoff_factor, self.max_connection_wait_time)
        self.heartbeat()
        return result

    def while_horse_works(self, elapsed_s: float) -> float | None:
        """As the horse starts a job, read the job RQ's dequeue would take next and hand it to the
        horse, which starts it with this one's end if it is still that job then (`jobs.worker.horse`)."""
        early = self._hand_early and self._take_early and not self.stop_requested
        if elapsed_s == 0 and early and self._handed is None and self.dequeues_by_priority:
            try:
                found = peek(self.queues_in_order, self.connection, self.job_class, self.serializer)
            except Exception as exc:  # the dequeue after this job takes it
                self.log.warning("Worker %s: could not read the next job early: %r", self.name, exc)
                found = None
            if found is not None:
                self.hand_to_horse(*found)
        return None

    def _pop(self) -> tuple[Job, Queue] | None:
        """One look at the queues, in this worker's order (`jobs.worker.dequeue.pop`)."""
        return pop(self.queues_in_order, self.connection, self.job_class, self.serializer)

    def teardown(self) -> None:
        """Watch a job the horse took early to its end, as any other; say idle, as RQ's worker says
        after each job (ours only once it finds the queues empty); then the warm horse's and RQ's
        teardown."""
        self._take_early = False
        handed = self.taken_handed()
        if handed is not None:
            try:
                self.execute_job(handed.job, handed.queue)
            except Exception:  # a horse left running is killed by RQ's teardown path below
                self.log.exception("Worker %s: could not see job %s to its end", self.name, handed.job.id)
        try:
            if self.get_state() != WorkerStatus.IDLE:
                self.set_state(WorkerStatus.IDLE)
        except redis.exceptions.RedisError as exc:  # RQ's own teardown meets it next
            self.log.warning("Worker %s: could not say it is idle: %s", self.name, exc)
        super().teardown()

    def rescue_queue(self, queue: Queue) -> None:
        """RQ's maintenance of a queue's intermediate list (`clean_registries`): `rescue_stranded`."""
        rescue_stranded([queue], self.connection)

    def rescue_if_due(self) -> None:
        """Put stranded jobs back, at most every RESCUE_EVERY_S (the first call always runs)."""
        now = time.monotonic()
        if self._rescued_at is not None and now - self._rescued_at < RESCUE_EVERY_S:
            return
        self._rescued_at = now
        rescued, dropped = rescue_stranded(self.queues, self.connection)
        if rescued:
            self.log.warning("Worker %s: stranded jobs put back at the front: %s", self.name, rescued)
        if dropped:
            self.log.info(
                "Worker %s: no longer startable, dropped from intermediate lists: %s", self.name, dropped
            )
