"""A job name's history of successful runs and its usual duration (`jobs.durations`)."""

from datetime import UTC, datetime

import pytest
from rq.job import JobStatus
from rq.utils import utcformat

from jobs.callbacks import CALLBACKS
from jobs.durations import HISTORY_RUNS, read_history, record_run, usual_s
from jobs.registry import demo_size, start_job
from jobs.snapshot import snapshot


def record(redis, name, seconds, size):
    with redis.pipeline() as pipe:
        record_run(pipe, name, seconds, size)
        pipe.execute()


def test_runs_are_kept_per_unit_of_size_newest_first_and_only_the_latest(redis):
    for seconds in range(1, HISTORY_RUNS + 6):
        record(redis, "long_task", seconds * 2.0, 2.0)
    history = read_history(redis, "long_task")
    assert len(history) == HISTORY_RUNS
    assert history[:2] == [HISTORY_RUNS + 5.0, HISTORY_RUNS + 4.0]


@pytest.mark.parametrize("name, size", [("send_email(to=['a'])", 1.0), ("", 1.0), (None, 1.0), ("x", 0.0)])
def test_nothing_is_recorded_without_a_name_like_the_catalogs_or_without_a_size(redis, name, size):
    record(redis, name, 3.0, size)
    assert redis.keys("rq-progress:history:*") == []


def test_the_usual_duration_is_the_median_per_unit_times_the_size():
    assert usual_s([], 10) is None
    assert usual_s([1.0, 3.0, 2.0], 10) == 20.0
    assert usual_s([1.0, 3.0], None) == 2.0


def test_the_demos_size_is_the_seconds_its_steps_sleep():
    assert demo_size({"steps": 10, "step_seconds": 0.5}) == 5.0
    assert demo_size({"steps": None, "step_seconds": 1.0}) == 30.0  # random 10 to 50: its middle


def test_a_successful_run_enters_its_names_history_and_later_jobs_are_judged_by_it(redis, run_queued):
    first = start_job(redis, "long_task", {"steps": 2, "step_seconds": 0.01})
    assert first.meta["size"] == 0.02
    run_queued()
    (per_unit,) = read_history(redis, "long_task")
    assert per_unit >= 1.0  # it slept at least its size
    second = start_job(redis, "long_task", {"steps": 4, "step_seconds": 0.01})
    second.set_status(JobStatus.STARTED)
    redis.hset(second.key, "started_at", utcformat(datetime.now(UTC)))
    # usual_s is rounded to the millisecond (`jobs.durations.usual_s`)
    assert snapshot(second.id, redis)["usual_s"] == pytest.approx(per_unit * 0.04, abs=0.0005)


def test_a_failed_run_is_not_history(redis, queue, run_queued):
    queue.enqueue("tests.fixture_jobs.fail", "boom", description="fails", **CALLBACKS)
    queue.enqueue("tests.fixture_jobs.answer", description="answers", **CALLBACKS)
    run_queued()
    assert (read_history(redis, "fails"), len(read_history(redis, "answers"))) == ([], 1)
