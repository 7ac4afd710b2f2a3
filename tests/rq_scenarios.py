"""Scenarios an RQ user runs, for `tests/integration/test_rq_differential.py`, and how they run.

A scenario is a function of a `Run`: it enqueues on the run's queue (a plain `rq.Queue`), runs the
run's worker class in bursts (`Run.work`, in this process, with the scheduler), may act on a job
while it runs from a thread (`while_running`, which waits until the job is started) and may
take checkpoints of the whole database between bursts. Job ids, group names, queue names and
the worker's name are fixed, so two runs of a scenario use the same keys. The jobs live in
`tests.fixture_jobs`; those that record their runs append to `ORDER`.
"""

import logging
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue, Repeat, Retry
from rq.command import send_stop_job_command
from rq.group import Group
from rq.job import Dependency, Job, JobStatus
from rq.utils import now

import tests.fixture_jobs  # noqa: F401  (loaded here once, so no work horse pays for the import)
from jobs.callbacks import CALLBACKS
from support.wait import wait_until
from tests.redis_state import State, read_state
from tests.worker_log import captured_to

QUEUE = "differential"
WORKER = "differential"
# The list the scenarios' jobs record their runs in (`tests.fixture_jobs.record`).
ORDER = "differential:order"
# Waits on a job to start, and the longest a scenario's job may block.
START_DEADLINE_S = 10
BLOCK_S = 30


@contextmanager
def process_settings_kept() -> Iterator[None]:
    """Put back what a worker's `work()` changes in this process: the SIGINT and SIGTERM handlers,
    and RQ's loggers (it adds handlers on pytest's captured stdout, stops their propagation and
    sets their level), so later tests in this process see neither."""
    signals = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    loggers = [logging.getLogger(name) for name in ("rq.worker", "rq.scheduler")]
    settings = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    try:
        yield
    finally:
        for number, handler in signals.items():
            signal.signal(number, handler)
        for logger, (handlers, level, propagate) in zip(loggers, settings, strict=True):
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


@dataclass
class Run:
    """One scenario under one worker class: the queue to enqueue on, bursts, checkpoints."""

    connection: Redis
    worker_class: type
    tmp: Path
    log: Path
    checkpoints: dict[str, State] = field(default_factory=dict)

    @property
    def queue(self) -> Queue:
        """The scenario's queue (a plain `rq.Queue`, as an RQ user would enqueue)."""
        return Queue(QUEUE, connection=self.connection)

    def worker(self, queues: tuple[str, ...] = (QUEUE,)) -> Any:
        """A new worker of the run's class on `queues` (in priority order)."""
        listened = [Queue(name, connection=self.connection) for name in queues]
        return self.worker_class(listened, connection=self.connection, name=WORKER)

    def work(
        self,
        while_running: Callable[[], None] | None = None,
        queues: tuple[str, ...] = (QUEUE,),
        worker: Any = None,
        **options: Any,
    ) -> Any:
        """One burst of a worker, with the scheduler (due jobs are enqueued as it starts).

        Args:
            while_running: run in a thread beside the burst (it waits on the job it acts on);
                what it raises is raised here after the burst.
            queues: a new worker's queues, in priority order.
            worker: a worker to burst again (from `worker()` or an earlier `work()`), else a new one.
            options: for `work()` (`max_jobs`, ...).

        Returns:
            The worker.
        """
        worker = worker or self.worker(queues)
        with ThreadPoolExecutor(1) as pool:
            action = pool.submit(while_running) if while_running else None
            with process_settings_kept(), captured_to(self.log):
                worker.work(burst=True, with_scheduler=True, logging_level="INFO", **options)
            if action is not None:
                action.result(timeout=START_DEADLINE_S + BLOCK_S)
        return worker

    def checkpoint(self, name: str) -> None:
        """Read the state now, to compare as `name`."""
        self.checkpoints[name] = read_state(self.connection)

    def fetch(self, job_id: str) -> Job:
        return Job.fetch(job_id, connection=self.connection)

    def wait_started(self, job_id: str) -> Job:
        """Wait until the worker has started `job_id`."""
        job = self.fetch(job_id)
        wait_until(
            lambda: job.get_status(refresh=True) == JobStatus.STARTED,
            START_DEADLINE_S,
            what=f"{job_id} started",
        )
        return job

    def gate(self, name: str) -> str:
        """A path for `tests.fixture_jobs.wait_for_file`: the job blocks until `release` creates it
        (the same path in both runs, as it is in the job's arguments)."""
        return str(self.tmp / f"gate-{name}")

    def release(self, gate: str) -> None:
        Path(gate).touch()

    def make_due(self) -> None:
        """Make every scheduled job due now, so the next burst's scheduler enqueues it."""
        registry = self.queue.scheduled_job_registry
        for job_id in registry.get_job_ids():
            registry.schedule(self.fetch(job_id), now() - timedelta(seconds=1))


def record(name: str, failures: int = 0) -> tuple:
    """Arguments for `tests.fixture_jobs.record` into ORDER."""
    return ("tests.fixture_jobs.record", ORDER, name, failures)


# -- the scenarios ------------------------------------------------------------------------------


def success(run: Run) -> None:
    run.queue.enqueue("tests.fixture_jobs.answer", 7, job_id="ok")
    run.work()


def running(run: Run) -> None:
    """What a running job's start wrote: its execution, the started registry, the worker busy."""
    gate = run.gate("running")
    run.queue.enqueue("tests.fixture_jobs.wait_for_file", gate, BLOCK_S, job_id="running")

    def look() -> None:
        try:
            run.wait_started("running")
            run.checkpoint("while it runs")
        finally:
            run.release(gate)

    run.work(while_running=look)


def failure(run: Run) -> None:
    run.queue.enqueue("tests.fixture_jobs.fail", "boom", job_id="fails")
    run.queue.enqueue("tests.fixture_jobs.fail_without_message", job_id="fails-bare")
    run.work()


def our_callbacks(run: Run) -> None:
    """The product's enqueue: our callbacks, which our worker sends with its own end script."""
    run.queue.enqueue("tests.fixture_jobs.count", 3, job_id="ok", **CALLBACKS)
    run.queue.enqueue("tests.fixture_jobs.fail", "boom", job_id="fails", **CALLBACKS)
    run.work()


def retry_with_interval(run: Run) -> None:
    run.queue.enqueue(*record("flaky", failures=1), job_id="flaky", retry=Retry(max=2, interval=30))
    run.queue.enqueue(*record("doomed", failures=9), job_id="doomed", retry=Retry(max=1, interval=30))
    run.work()
    run.checkpoint("after the first attempts")
    run.make_due()
    run.work()


def returned_retry(run: Run) -> None:
    run.queue.enqueue("tests.fixture_jobs.ask_retry", "differential:asks-once", 1, 2, job_id="asks-once")
    run.queue.enqueue("tests.fixture_jobs.ask_retry", "differential:asks-always", 9, 1, job_id="asks-always")
    run.work()


def stop(run: Run) -> None:
    run.queue.enqueue("tests.fixture_jobs.wait_for_file", run.gate("stopped"), BLOCK_S, job_id="stopped")
    run.queue.enqueue(*record("after-stop"), job_id="after-stop")
    run.work(while_running=lambda: send_stop_job_command(run.connection, run.wait_started("stopped").id))


def cancel_waiting(run: Run) -> None:
    """One job canceled before the burst, one while the job before it runs."""
    gate = run.gate("first")
    run.queue.enqueue("tests.fixture_jobs.wait_for_file", gate, BLOCK_S, job_id="first")
    run.queue.enqueue(*record("canceled-early"), job_id="canceled-early")
    run.queue.enqueue(*record("canceled-late"), job_id="canceled-late")
    run.queue.enqueue(*record("last"), job_id="last")
    run.fetch("canceled-early").cancel()

    def cancel_late() -> None:
        try:
            run.wait_started("first")
            run.fetch("canceled-late").cancel()
        finally:
            run.release(gate)

    run.work(while_running=cancel_late)


def cancel_running(run: Run) -> None:
    gate = run.gate("running")
    run.queue.enqueue("tests.fixture_jobs.wait_for_file", gate, BLOCK_S, job_id="running")
    run.queue.enqueue(*record("after"), job_id="after")

    def cancel() -> None:
        try:
            run.wait_started("running").cancel()
        finally:
            run.release(gate)

    run.work(while_running=cancel)


def timeout(run: Run) -> None:
    run.queue.enqueue("tests.fixture_jobs.sleep_for", 5, job_id="slow", job_timeout=1)
    run.queue.enqueue(*record("after-timeout"), job_id="after-timeout")
    run.work()


def crash(run: Run) -> None:
    run.queue.enqueue("tests.fixture_jobs.exit_hard", 3, job_id="crashes")
    run.queue.enqueue(*record("after-crash"), job_id="after-crash")
    run.work()


def dependents(run: Run) -> None:
    run.queue.enqueue(*record("parent"), job_id="parent")
    run.queue.enqueue(*record("child"), job_id="child", depends_on="parent")
    run.queue.enqueue(*record("independent"), job_id="independent")
    run.queue.enqueue(*record("fails", failures=1), job_id="fails")
    run.queue.enqueue(*record("child-of-failure"), job_id="child-of-failure", depends_on="fails")
    allowed = Dependency(jobs=["fails"], allow_failure=True)
    run.queue.enqueue(*record("allowed-failure"), job_id="allowed-failure", depends_on=allowed)
    run.work()


def dependents_of_result_ttl_0(run: Run) -> None:
    run.queue.enqueue(*record("parent"), job_id="parent", result_ttl=0)
    run.queue.enqueue(*record("child"), job_id="child", depends_on="parent")
    run.work()


def dependents_of_canceled_running_parent(run: Run) -> None:
    gate = run.gate("parent")
    run.queue.enqueue("tests.fixture_jobs.wait_for_file", gate, BLOCK_S, job_id="parent")
    run.queue.enqueue(*record("child"), job_id="child", depends_on="parent")

    def cancel_parent() -> None:
        try:
            run.wait_started("parent").cancel()
        finally:
            run.release(gate)

    run.work(while_running=cancel_parent)


def group(run: Run) -> None:
    Group.create(run.connection, name="batch").enqueue_many(
        run.queue,
        [
            Queue.prepare_data("tests.fixture_jobs.record", (ORDER, "in-group"), job_id="in-group"),
            Queue.prepare_data("tests.fixture_jobs.fail_without_message", job_id="fails-in-group"),
        ],
    )
    run.work()


def repeat(run: Run) -> None:
    run.queue.enqueue(*record("repeats-now"), job_id="repeats-now", repeat=Repeat(times=2))
    run.queue.enqueue(*record("repeats-later"), job_id="repeats-later", repeat=Repeat(times=1, interval=30))
    run.work()
    run.checkpoint("after the first runs")
    run.make_due()
    run.work()


def enqueue_at_front(run: Run) -> None:
    """Jobs put at the front, by an enqueue and by a retry, run before those already waiting."""
    run.queue.enqueue(*record("a"), job_id="a")
    run.queue.enqueue(*record("b"), job_id="b")
    run.queue.enqueue(*record("front"), job_id="front", at_front=True)
    retry = Retry(max=1, enqueue_at_front=True)
    run.queue.enqueue(
        *record("retried-at-front", failures=1), job_id="retried-at-front", retry=retry, at_front=True
    )
    run.work()


def enqueue_at_front_while_running(run: Run) -> None:
    """A job put at the front while another runs starts before the jobs that waited behind it."""
    gate = run.gate("running")
    run.queue.enqueue("tests.fixture_jobs.wait_for_file", gate, BLOCK_S, job_id="running")
    run.queue.enqueue(*record("waiting"), job_id="waiting")

    def put_at_front() -> None:
        try:
            run.wait_started("running")
            run.queue.enqueue(*record("front"), job_id="front", at_front=True)
        finally:
            run.release(gate)

    run.work(while_running=put_at_front)


def priority(run: Run) -> None:
    """A worker on several queues (as the Procfile's) takes from the first non-empty one."""
    high, low = (Queue(name, connection=run.connection) for name in ("high", "low"))
    low.enqueue(*record("low-1"), job_id="low-1")
    high.enqueue(*record("high-1"), job_id="high-1")
    low.enqueue(*record("low-2"), job_id="low-2")
    high.enqueue(*record("high-2"), job_id="high-2")
    run.work(queues=("high", QUEUE, "low"))


def max_jobs(run: Run) -> None:
    """A burst that may run one job leaves the next where it was, queued."""
    run.queue.enqueue(*record("first"), job_id="first")
    run.queue.enqueue(*record("second"), job_id="second")
    run.work(max_jobs=1)


def same_worker_twice(run: Run) -> None:
    """A worker object works again after its first burst ended."""
    run.queue.enqueue(*record("first"), job_id="first")
    worker = run.work()
    run.checkpoint("after the first burst")
    run.queue.enqueue(*record("second"), job_id="second")
    run.work(worker=worker)


def meta(run: Run) -> None:
    run.queue.enqueue("tests.fixture_jobs.save_meta", {"stage": "done"}, job_id="saves", meta={"given": 1})
    run.queue.enqueue("tests.fixture_jobs.fail", "boom", job_id="reports-then-fails", meta={"given": 2})
    run.work()


def ttls(run: Run) -> None:
    run.queue.enqueue("tests.fixture_jobs.answer", 1, job_id="short-result", result_ttl=100)
    run.queue.enqueue("tests.fixture_jobs.answer", 2, job_id="kept-result", result_ttl=-1)
    run.queue.enqueue("tests.fixture_jobs.fail_without_message", job_id="short-failure", failure_ttl=200)
    run.work()


SCENARIOS = [
    success,
    running,
    failure,
    our_callbacks,
    retry_with_interval,
    returned_retry,
    stop,
    cancel_waiting,
    cancel_running,
    timeout,
    crash,
    dependents,
    dependents_of_result_ttl_0,
    dependents_of_canceled_running_parent,
    group,
    repeat,
    enqueue_at_front,
    enqueue_at_front_while_running,
    priority,
    max_jobs,
    same_worker_twice,
    meta,
    ttls,
]
