"""Handing the horse its next job early (`jobs.worker.horse`, `.bookkeeping`), on fakeredis, in one process.

The worker object plays both sides of a real pipe and of the memory a horse shares with its
parent: the parent reads the next job and hands it over; the horse starts it in the round trip
that ends its job, only if it is still the job RQ's dequeue would take; else it stays in its
queue for the parent's next dequeue.
"""

from multiprocessing import Pipe

import pytest
import rq
from redis.connection import AbstractConnection
from rq.job import JobStatus
from rq.registry import StartedJobRegistry

from jobs.callbacks import CALLBACKS
from jobs.worker import Worker
from jobs.worker.dequeue import ReliableQueue, peek, pop
from jobs.worker.handoff import Handoff


@pytest.fixture
def queue(redis) -> ReliableQueue:
    return ReliableQueue("default", connection=redis)


@pytest.fixture
def worker(redis):
    """Our worker, as a parent with a live horse and as that horse, both ends of its job pipe here."""
    worker = Worker(["default"], connection=redis)
    jobs_in, jobs_out = Pipe(duplex=False)
    worker._handoff, worker._to_horse, worker._horse_pid = Handoff(), jobs_out, 2**22 + 1
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
    handed = worker.hand_to_horse(*peek(worker.queues, redis))
    assert handed.job.id == second.id and not handed.taken
    before = len(trips)
    assert worker.perform_job(job, taken_from, execution)
    assert len(trips) - before == 2  # its start; its end with the second's start
    assert first.get_status(refresh=True) == JobStatus.FINISHED
    assert second.get_status(refresh=True) == JobStatus.STARTED
    assert second.id in StartedJobRegistry("default", connection=redis)
    assert redis.lrange(queue.intermediate_queue_key, 0, -1) == [] and queue.job_ids == []
    worker._settle(worker._next_job)  # as the horse's loop does before it answers
    assert handed.taken and worker.taken_handed() is handed

    following = worker._next_job
    worker.started_in_advance = following.started
    before = len(trips)
    assert worker.perform_job(following.job, following.queue, following.execution)
    assert len(trips) - before == 1  # its end: it was started already
    assert second.get_status(refresh=True) == JobStatus.FINISHED and second.return_value() == 7


@pytest.mark.parametrize("meanwhile", ["put in front", "higher queue", "taken elsewhere", "canceled"])
def test_a_job_no_longer_first_is_not_started_and_stays_for_the_parent(worker, queue, redis, meanwhile):
    queue.enqueue("tests.fixture_jobs.answer", **CALLBACKS)
    second = queue.enqueue("tests.fixture_jobs.answer", **CALLBACKS)
    job, taken_from, execution = taken(worker, queue)
    high = ReliableQueue("high", connection=redis)
    worker.hand_to_horse(*peek([high, *worker.queues], redis))  # as a worker on high and default
    if meanwhile == "put in front":
        queue.enqueue("tests.fixture_jobs.answer", at_front=True)
    elif meanwhile == "higher queue":
        high.enqueue("tests.fixture_jobs.answer")
    elif meanwhile == "taken elsewhere":
        pop([queue], redis)
    else:
        second.cancel()
    assert worker.perform_job(job, taken_from, execution)
    assert worker._next_job is not None and worker._next_job.started is False
    worker._settle(worker._next_job)
    assert worker._next_job is None and worker.taken_handed() is None
    assert second.get_status(refresh=True) != JobStatus.STARTED
    assert second.id not in StartedJobRegistry("default", connection=redis)
    if meanwhile in ("put in front", "higher queue"):
        assert second.id in queue.job_ids


def test_a_job_that_waited_in_the_pipe_too_long_is_not_taken(worker, queue, redis):
    queue.enqueue("tests.fixture_jobs.answer", **CALLBACKS)
    second = queue.enqueue("tests.fixture_jobs.answer", **CALLBACKS)
    job, taken_from, execution = taken(worker, queue)
    worker.hand_to_horse(*peek(worker.queues, redis))
    worker.handoff_max_age_s = 0.0  # as if the parent had been frozen past the age limit
    assert worker.perform_job(job, taken_from, execution)
    assert worker._next_job is None and second.get_status(refresh=True) == JobStatus.QUEUED
    assert worker.taken_handed() is None and queue.job_ids == [second.id]  # for the parent's dequeue


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
    worker.hand_to_horse(*peek(worker.queues, redis))
    worker._stopped_job_id = second.id  # sent early, not taken: the stop finds nothing to kill
    worker.kill_horse()
    assert killed == [] and worker._stopped_job_id is None
    assert worker.perform_job(job, taken_from, execution)  # ends the first, starts the second
    worker._settle(worker._next_job)
    worker._stopped_job_id = job.id  # ended: nothing to kill
    worker.kill_horse()
    assert killed == []
    worker._stopped_job_id = second.id
    worker.kill_horse()
    assert len(killed) == 1
