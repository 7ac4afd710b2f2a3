"""A waiting job's place in line (`jobs.line`), read by the snapshot's one script."""

from datetime import UTC, datetime, timedelta

import pytest
from rq import Queue, Worker
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.utils import utcformat

from jobs.callbacks import initial_meta
from jobs.durations import record_run
from jobs.line import FALLBACK_ORDER, expected_start_s
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


def test_jobs_a_worker_holds_taken_but_not_started_are_ahead_of_the_queue(redis, queues):
    first, second = enqueue(queues["default"], 2)
    redis.lmove(queues["default"].key, queues["default"].intermediate_queue_key, "LEFT", "RIGHT")
    assert (position(redis, first), position(redis, second)) == (1, 2)
    (low,) = enqueue(queues["low"])
    redis.lmove(queues["default"].key, queues["default"].intermediate_queue_key, "LEFT", "RIGHT")
    assert position(redis, low) == 3


def test_a_job_in_no_list_has_no_position(redis, queues):
    (job_id,) = enqueue(queues["default"])
    redis.delete(queues["default"].key)
    assert position(redis, job_id) is None


def test_expected_start_without_workers_or_without_history_is_unknown():
    assert expected_start_s(0, [], [5.0], 1) is None
    assert expected_start_s(1, [None], [], 0) is None
    assert expected_start_s(1, [3.0], [None], 1) is None


def test_an_idle_worker_takes_the_first_in_line_at_once():
    assert expected_start_s(2, [10.0], [], 0) == 0.0


def test_jobs_ahead_go_to_whichever_worker_is_free_first():
    # Two workers, free in 10 s and 4 s; ahead: 6 s, 6 s. 4+6=10 and 10 -> the third starts at 10 s.
    assert expected_start_s(2, [10.0, 4.0], [6.0, 6.0], 2) == 10.0
    # One worker: everything in a row.
    assert expected_start_s(1, [5.0], [6.0, 6.0], 2) == 17.0


def test_jobs_ahead_past_those_read_one_by_one_last_their_mean():
    assert expected_start_s(1, [], [2.0, 4.0], 4) == 12.0


def start_on_worker(redis, queue: Queue, job_id: str, worker: Worker, started_at: datetime) -> None:
    """Mark a job started on `worker`, as the worker's bookkeeping does (RQ's own writes)."""
    queue.remove(job_id)
    redis.zadd(StartedJobRegistry(queue.name, connection=redis).key, {f"{job_id}:exec": 9e9})
    redis.hset(Job.key_for(job_id), mapping={"status": "started", "started_at": utcformat(started_at)})
    redis.hset(worker.key, "state", "busy")


def test_expected_start_counts_the_running_jobs_usual_time_left_and_the_jobs_ahead(redis, queues):
    meta = initial_meta(size=10.0)
    for _ in range(3):  # 3 s per unit: 30 s for a job of size 10
        record_run(redis, "sized", 30.0, 10.0)
    options = {"meta": meta, "description": "sized"}
    ids = [queues["default"].enqueue("tests.fixture_jobs.answer", **options).id for _ in range(3)]
    worker = register_worker(redis, "high", "default", "low")
    start_on_worker(redis, queues["default"], ids[0], worker, datetime.now(UTC) - timedelta(seconds=10))
    payload = snapshot(ids[2], redis)
    assert payload["position"] == 2
    # 20 s left of the running one (usually 30, ran 10), then 30 s for the one ahead.
    assert payload["expected_start_s"] == pytest.approx(50.0, abs=1.0)
    assert snapshot(ids[1], redis)["expected_start_s"] == pytest.approx(20.0, abs=1.0)


def test_a_waiting_job_of_a_name_without_history_gives_no_start_time(redis, queues):
    register_worker(redis, "default")
    ids = enqueue(queues["default"], 2)
    assert snapshot(ids[0], redis)["expected_start_s"] == 0.0  # nothing ahead, a worker idle
    assert snapshot(ids[1], redis)["expected_start_s"] is None


def test_a_queue_outside_the_fallback_order_counts_only_itself_without_workers(redis, queues):
    enqueue(queues["high"], 2)
    (job_id,) = enqueue(Queue("reports", connection=redis))
    assert position(redis, job_id) == 1
