"""The reliable dequeue's two scripts and the worker's bookkeeping, on fakeredis (which runs Lua)."""

import threading

import pytest
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from jobs.keys import wake_channel
from jobs.worker import Worker
from jobs.worker.dequeue import ReliableQueue, peek, pop, rescue_stranded

NAMES = ("high", "default", "low")


@pytest.fixture
def queues(redis) -> list[ReliableQueue]:
    return [ReliableQueue(name, connection=redis) for name in NAMES]


def held(queue: Queue) -> list[str]:
    """The ids in a queue's intermediate list."""
    return [i.decode() for i in queue.connection.lrange(queue.intermediate_queue_key, 0, -1)]


def test_pop_takes_high_before_default_before_low_into_the_intermediate_list(queues, redis):
    high, default, low = queues
    jobs = [queue.enqueue("tests.fixture_jobs.answer") for queue in (low, default, high, high)]
    taken = [pop(queues, redis) for _ in range(4)]
    assert [(job.id, queue.name) for job, queue in taken] == [
        (jobs[2].id, "high"),
        (jobs[3].id, "high"),
        (jobs[1].id, "default"),
        (jobs[0].id, "low"),
    ]
    assert taken[0][0].func_name == "tests.fixture_jobs.answer"  # the job's hash came with it
    assert held(high) == [jobs[2].id, jobs[3].id] and held(low) == [jobs[0].id]
    assert pop(queues, redis) is None


def test_pop_skips_a_job_deleted_while_queued_and_forgets_it(queues, redis):
    high = queues[0]
    gone, kept = high.enqueue("tests.fixture_jobs.answer"), high.enqueue("tests.fixture_jobs.answer")
    redis.delete(gone.key)
    job, _ = pop(queues, redis)
    assert job.id == kept.id and held(high) == [kept.id]


def test_the_start_script_takes_the_job_out_of_the_intermediate_list(queues, redis):
    job = queues[1].enqueue("tests.fixture_jobs.answer")
    worker = Worker(list(NAMES), connection=redis)
    taken, _ = pop(worker.queues, redis)
    execution = worker.prepare_execution(taken)  # the parent's part: the job is still held
    assert held(queues[1]) == [job.id] and job.id not in StartedJobRegistry("default", connection=redis)
    assert worker.start_if_waiting(taken, execution)  # the horse's
    assert held(queues[1]) == []
    assert job.id in StartedJobRegistry("default", connection=redis)
    assert taken.get_status(refresh=True) == JobStatus.STARTED
    assert worker.get_state() == "busy" and redis.hget(worker.key, "state") == b"busy"


def test_a_start_sent_again_by_its_execution_still_starts_and_another_execution_is_refused(queues, redis):
    job = queues[1].enqueue("tests.fixture_jobs.answer")
    worker = Worker(list(NAMES), connection=redis)
    taken, _ = pop(worker.queues, redis)
    execution = worker.prepare_execution(taken)
    assert worker.start_if_waiting(taken, execution)
    assert worker.start_if_waiting(taken, execution)  # as redis-py sends it again after a lost reply
    assert StartedJobRegistry("default", connection=redis).count == 1
    assert not worker.start_if_waiting(taken, worker.prepare_execution(taken))
    job.cancel()
    assert not worker.start_if_waiting(taken, execution)


@pytest.mark.parametrize("meanwhile", ["canceled", "deleted", "rescued"])
def test_a_job_that_no_longer_waits_is_not_started(queues, redis, meanwhile):
    job = queues[1].enqueue("tests.fixture_jobs.answer")
    worker = Worker(list(NAMES), connection=redis)
    taken, _ = pop(worker.queues, redis)
    execution = worker.prepare_execution(taken)
    if meanwhile == "canceled":
        job.cancel()
    elif meanwhile == "deleted":
        job.delete()
    else:
        rescue_stranded(queues, redis, gap_s=0)
        rescue_stranded(queues, redis, gap_s=0)
        assert queues[1].job_ids == [job.id]
    assert not worker.start_if_waiting(taken, execution)
    assert held(queues[1]) == [] and job.id not in StartedJobRegistry("default", connection=redis)
    if meanwhile != "deleted":
        assert Job.fetch(job.id, connection=redis).get_status() != JobStatus.STARTED


def test_peek_reads_the_job_pop_would_take_and_moves_nothing(queues, redis):
    first = queues[1].enqueue("tests.fixture_jobs.answer")
    queues[2].enqueue("tests.fixture_jobs.answer")
    read, queue = peek(queues, redis)
    assert read.id == first.id and queue is queues[1]
    assert queues[1].job_ids == [first.id] and held(queues[1]) == []
    assert pop(queues, redis)[0].id == first.id


def test_a_job_read_early_starts_only_while_it_is_the_one_pop_would_take(queues, redis):
    first, second = (queues[1].enqueue("tests.fixture_jobs.answer") for _ in range(2))
    worker = Worker(list(NAMES), connection=redis)
    read, _ = peek(worker.queues, redis)
    queues[0].enqueue("tests.fixture_jobs.answer")  # a job of higher priority came since
    assert not worker.start_if_waiting(read, worker.prepare_execution(read))
    queues[0].empty()
    execution = worker.prepare_execution(read)
    assert worker.start_if_waiting(read, execution)
    assert worker.start_if_waiting(read, execution)  # sent again by its execution
    assert queues[1].job_ids == [second.id] and first.get_status(refresh=True) == JobStatus.STARTED
    read, _ = peek(worker.queues, redis)
    queues[1].enqueue("tests.fixture_jobs.answer", at_front=True)
    assert not worker.start_if_waiting(read, worker.prepare_execution(read))
    assert second.id in queues[1].job_ids


def test_a_stranded_job_goes_back_at_the_front_only_when_seen_twice_the_gap_apart(queues, redis):
    high = queues[0]
    first, second, later = (high.enqueue("tests.fixture_jobs.answer") for _ in range(3))
    pop(queues, redis), pop(queues, redis)  # two workers took them and died
    assert rescue_stranded(queues, redis, gap_s=60) == ([], [])  # seen once
    assert rescue_stranded(queues, redis, gap_s=60) == ([], [])  # seen again, too soon
    assert rescue_stranded(queues, redis, gap_s=0) == ([second.id, first.id], [])
    assert high.job_ids == [first.id, second.id, later.id] and held(high) == []


def test_a_job_taken_again_after_a_sighting_is_not_rescued_on_the_old_sighting(queues, redis):
    high = queues[0]
    job = high.enqueue("tests.fixture_jobs.answer")
    pop(queues, redis)
    rescue_stranded(queues, redis, gap_s=0)  # seen once
    redis.lmove(high.intermediate_queue_key, high.key)  # as if put back and taken again
    pop(queues, redis)
    assert rescue_stranded(queues, redis, gap_s=0) == ([], [])  # a new sighting, not the second
    assert held(high) == [job.id]


def test_a_started_job_is_left_alone_and_one_no_longer_queued_is_only_dropped(queues, redis):
    high = queues[0]
    started, failed, requeued = (high.enqueue("tests.fixture_jobs.answer") for _ in range(3))
    for _ in range(3):
        pop(queues, redis)
    # Registered as started and still in the list (RQ's one-queue worker, until its horse starts).
    redis.zadd(StartedJobRegistry("high", connection=redis).key, {f"{started.id}:execution": 2e9})
    failed.set_status("failed")
    high.push_job_id(requeued.id)  # requeued by hand while still held
    for _ in range(2):
        rescued, dropped = rescue_stranded(queues, redis, gap_s=0)
    assert rescued == [] and sorted(dropped) == sorted([failed.id, requeued.id])
    assert held(high) == [started.id] and high.job_ids == [requeued.id]


def test_an_enqueue_publishes_a_wake_up_on_its_queue_channel(queues, redis):
    pubsub = redis.pubsub()
    pubsub.subscribe(wake_channel("low"))
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    queues[2].enqueue("tests.fixture_jobs.answer")
    message = pubsub.get_message(timeout=1)
    assert message and message["channel"] == wake_channel("low").encode()


def test_a_warm_shutdown_asked_while_busy_ends_the_next_wait_without_taking_a_job(queues, redis):
    job = queues[1].enqueue("tests.fixture_jobs.answer")
    worker = Worker(list(NAMES), connection=redis)
    worker._stop_requested = True  # RQ's SIGTERM handler, while the worker was still busy
    waiting = threading.Thread(target=worker.dequeue_job_and_maintain_ttl, args=(405,), daemon=True)
    waiting.start()
    waiting.join(5)
    assert not waiting.is_alive()
    assert queues[1].job_ids == [job.id] and held(queues[1]) == []


def test_the_worker_keeps_the_queue_class_it_is_given_and_takes_its_jobs_reliably(redis):
    class Custom(Queue):
        pass

    queue = Custom("high", connection=redis)
    job = queue.enqueue("tests.fixture_jobs.answer")
    worker = Worker([queue], connection=redis, queue_class=Custom)
    assert worker.queue_class is Custom and type(worker.queues[0]) is Custom
    assert Worker(["low"], connection=redis).queue_class is Queue
    taken, source = worker._pop()
    assert taken.id == job.id and source is worker.queues[0]
    assert held(queue) == [job.id] and queue.job_ids == []
