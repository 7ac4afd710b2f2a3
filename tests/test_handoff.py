"""Handing the horse its next job early (`jobs.horse`, `jobs.bookkeeping`), on fakeredis, in one process.

The worker object plays both sides of a real pipe and of the memory a horse shares with its
parent: the parent hands a job, the horse takes it as its job ends and starts it in the round
trip that ends that job, or the parent withdraws it first; never both.
"""

from multiprocessing import Pipe

import pytest
import rq
from redis.connection import AbstractConnection
from rq.job import JobStatus
from rq.registry import StartedJobRegistry

from jobs.callbacks import CALLBACKS
from jobs.dequeue import ReliableQueue, pop
from jobs.horse import _Handoff
from jobs.worker import Worker


@pytest.fixture
def queue(redis) -> ReliableQueue:
    return ReliableQueue("default", connection=redis)


@pytest.fixture
def worker(redis):
    """Our worker, as a parent with a live horse and as that horse, both ends of its job pipe here."""
    worker = Worker(["default"], connection=redis)
    jobs_in, jobs_out = Pipe(duplex=False)
    worker._handoff, worker._to_horse, worker._horse_pid = _Handoff(), jobs_out, 2**22 + 1
    worker.become_horse(jobs_in)
    return worker


@pytest.fixture
def trips(monkeypatch) -> list:
    """Each round trip to Redis from now on, as one item."""
    sent: list = []
    send = AbstractConnection.send_packed_command

    def counted(self, *args, **kwargs):
        sent.append(1)
        return send(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    return sent


def taken(worker, queue):
    """Take the first queued job, as the parent does; the horse starts it in `perform_job`."""
    job, taken_from = pop(worker.queues, queue.connection)
    return job, taken_from, worker.prepare_execution(job)


def test_the_next_job_starts_in_the_round_trip_that_ends_the_one_before(worker, queue, redis, trips):
    queue.enqueue("tests.fixture_jobs.answer", **CALLBACKS)
    assert worker.perform_job(*taken(worker, queue))  # the server has learnt the scripts
    first, second = (queue.enqueue("tests.fixture_jobs.answer", 7, **CALLBACKS) for _ in range(2))
    job, taken_from, execution = taken(worker, queue)
    handed = worker.hand_to_horse(*pop(worker.queues, redis))
    assert handed.job.id == second.id and not handed.taken
    before = len(trips)
    assert worker.perform_job(job, taken_from, execution)
    assert len(trips) - before == 2  # its start; its end with the second's start
    assert first.get_status(refresh=True) == JobStatus.FINISHED
    assert second.get_status(refresh=True) == JobStatus.STARTED
    assert second.id in StartedJobRegistry("default", connection=redis)
    assert redis.lrange(queue.intermediate_queue_key, 0, -1) == []
    assert handed.taken and worker.withdraw_handed() is None  # too late: the horse has it

    following = worker._next_job
    worker.started_in_advance = following.started
    before = len(trips)
    assert worker.perform_job(following.job, following.queue, following.execution)
    assert len(trips) - before == 1  # its end: it was started already
    assert second.get_status(refresh=True) == JobStatus.FINISHED and second.return_value() == 7


def test_a_withdrawn_job_is_never_taken_and_goes_back_whole(worker, queue, redis):
    queue.enqueue("tests.fixture_jobs.answer", **CALLBACKS)
    second = queue.enqueue("tests.fixture_jobs.answer", **CALLBACKS)
    job, taken_from, execution = taken(worker, queue)
    worker.hand_to_horse(*pop(worker.queues, redis))
    withdrawn = worker.withdraw_handed()
    assert withdrawn.job.id == second.id and worker._handed is None
    assert worker.perform_job(job, taken_from, execution)
    assert worker._next_job is None  # the horse read it from the pipe and left it
    assert second.get_status(refresh=True) == JobStatus.QUEUED
    assert redis.lrange(queue.intermediate_queue_key, 0, -1) == [second.id.encode()]  # for the parent


def test_a_job_that_waited_in_the_pipe_too_long_is_not_taken(worker, queue, redis):
    queue.enqueue("tests.fixture_jobs.answer", **CALLBACKS)
    second = queue.enqueue("tests.fixture_jobs.answer", **CALLBACKS)
    job, taken_from, execution = taken(worker, queue)
    worker.hand_to_horse(*pop(worker.queues, redis))
    worker.handoff_max_age_s = 0.0  # as if the parent had been frozen past the age limit
    assert worker.perform_job(job, taken_from, execution)
    assert worker._next_job is None and second.get_status(refresh=True) == JobStatus.QUEUED
    assert worker.withdraw_handed().job.id == second.id  # the parent's to give back


def test_a_stop_kills_the_horse_only_for_the_job_it_runs(worker, queue, redis, monkeypatch):
    killed: list = []
    monkeypatch.setattr(rq.Worker, "kill_horse", lambda self, sig=None: killed.append(sig))
    queue.enqueue("tests.fixture_jobs.answer", **CALLBACKS)
    second = queue.enqueue("tests.fixture_jobs.answer", **CALLBACKS)
    job, taken_from, execution = taken(worker, queue)
    worker._handoff.running.value = worker._handoff.taken.value = worker._send_to_horse(
        job, taken_from, execution
    )
    worker._jobs_in.recv()  # the horse's copy of the first job
    worker.hand_to_horse(*pop(worker.queues, redis))
    worker._stopped_job_id = second.id  # sent early, not taken: the stop finds nothing to kill
    worker.kill_horse()
    assert killed == [] and worker._stopped_job_id is None
    assert worker.perform_job(job, taken_from, execution)  # ends the first, takes the second
    worker._stopped_job_id = job.id  # ended: nothing to kill
    worker.kill_horse()
    assert killed == []
    worker._stopped_job_id = second.id
    worker.kill_horse()
    assert len(killed) == 1
