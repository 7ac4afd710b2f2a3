"""A waiting job's place in line (`jobs.line`), read by the snapshot's one script."""

from datetime import timedelta

import pytest
from rq import Queue, Worker

from jobs.line import FALLBACK_ORDER
from jobs.snapshot import snapshot


@pytest.fixture
def queues(redis):
    """The Procfile's queues, by name."""
    return {name: Queue(name, connection=redis) for name in FALLBACK_ORDER}


def enqueue(queue: Queue, count: int = 1) -> list[str]:
    """Enqueue `count` jobs; their ids in line order."""
    return [queue.enqueue("tests.fixture_jobs.answer").id for _ in range(count)]


def register_worker(redis, *names: str) -> Worker:
    """A worker registered on `names`, in that order, as `rq worker` registers (no job runs)."""
    worker = Worker([Queue(name, connection=redis) for name in names], connection=redis)
    worker.register_birth()
    return worker


def position(redis, job_id: str) -> int | None:
    return snapshot(job_id, redis)["position"]


def test_the_first_job_of_the_first_queue_is_first_in_line(redis, queues):
    (job_id,) = enqueue(queues["high"])
    payload = snapshot(job_id, redis)
    assert (payload["state"], payload["position"]) == ("PENDING", 1)


def test_position_counts_the_jobs_ahead_in_its_queue(redis, queues):
    ids = enqueue(queues["default"], 4)
    assert [position(redis, job_id) for job_id in ids] == [1, 2, 3, 4]


def test_without_workers_the_higher_queues_of_the_fallback_order_come_first(redis, queues):
    enqueue(queues["high"], 2)
    enqueue(queues["default"], 3)
    (low,) = enqueue(queues["low"])
    (default,) = enqueue(queues["default"])
    assert (position(redis, default), position(redis, low)) == (6, 7)


def test_the_workers_own_order_decides_which_queues_come_first(redis, queues):
    enqueue(queues["high"], 2)
    (low,) = enqueue(queues["low"])
    register_worker(redis, "low", "high")
    assert position(redis, low) == 1
    register_worker(redis, "high", "low")  # another worker of the queue serves high first
    assert position(redis, low) == 3


def test_a_worker_that_does_not_serve_the_higher_queue_does_not_count_it(redis, queues):
    enqueue(queues["high"], 5)
    (job_id,) = enqueue(queues["default"])
    register_worker(redis, "default")
    assert position(redis, job_id) == 1


def test_moving_up_as_jobs_ahead_leave(redis, queues):
    ids = enqueue(queues["default"], 3)
    queues["default"].remove(ids[0])
    assert position(redis, ids[2]) == 2


@pytest.mark.parametrize("how", ["scheduled", "deferred"])
def test_scheduled_and_deferred_jobs_have_no_position(redis, queues, how):
    if how == "scheduled":
        job = queues["default"].enqueue_in(timedelta(seconds=60), "tests.fixture_jobs.answer")
    else:
        parent = queues["default"].enqueue("tests.fixture_jobs.answer")
        job = queues["default"].enqueue("tests.fixture_jobs.answer", depends_on=parent)
    payload = snapshot(job.id, redis)
    assert (payload["state"], payload["position"], payload["expected_start_s"]) == ("PENDING", None, None)


def test_a_job_a_worker_holds_out_of_its_queue_has_no_position(redis, queues):
    (job_id,) = enqueue(queues["default"])
    redis.lmove(queues["default"].key, queues["default"].intermediate_queue_key, "LEFT", "RIGHT")
    assert position(redis, job_id) is None
