"""The drain-rate bench's reading of end times, its arithmetic and its tables (the drains run
real processes: `python -m bench`)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from rq.utils import utcformat

from bench import drain, report
from bench.figures import CELERY, OURS, PLAIN

START = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "stamp",
    [
        utcformat(at(1.25)),  # RQ's ended_at: "...T00:00:01.250000Z"
        at(1.25).isoformat(),  # Celery's date_done: "...T00:00:01.250000+00:00"
        at(1.25).replace(tzinfo=None).isoformat(),  # naive: taken as UTC
        utcformat(at(1.25)).encode(),  # as redis-py returns it
    ],
)
def test_every_end_time_format_reads_as_the_same_epoch(stamp):
    assert drain.epoch(stamp) == at(1.25).timestamp()


def test_rate_runs_from_the_first_end_to_the_last_and_counts_only_successes():
    t0 = START.timestamp()
    ends = [(t0 + i * 0.01, True, None) for i in range(101)] + [(t0 + 0.5, False, None), (None, False, None)]
    found = drain.figures(ends, launched_at=t0 - 2.0)
    assert found["jobs"] == 101 and found["failed"] == 2
    assert found["window_s"] == pytest.approx(1.0)
    assert found["jobs_per_s"] == pytest.approx(100.0)  # 100 intervals in one second
    assert found["launch_to_first_end_s"] == pytest.approx(2.0)
    assert "workers" not in found  # Celery names no worker


def test_fewer_than_two_ends_give_no_rate():
    assert drain.figures([(START.timestamp(), True, None)])["jobs_per_s"] is None
    assert drain.figures([])["jobs_per_s"] is None


def test_named_workers_give_how_long_until_every_process_had_ended_a_job():
    t0 = START.timestamp()
    ends = [(t0, True, "a"), (t0 + 0.1, True, "a"), (t0 + 0.3, True, "b"), (t0 + 0.4, True, "b")]
    found = drain.figures(ends)
    assert found["workers"] == 2
    assert found["all_working_after_s"] == pytest.approx(0.3)


def test_rq_ends_wait_for_every_job_and_read_ended_at_status_and_worker(redis):
    redis.hset("rq:job:a", mapping={"status": "finished", "ended_at": utcformat(at(1)), "worker_name": "w1"})
    redis.hset("rq:job:b", mapping={"status": "started"})
    assert drain.rq_ends(redis, ["a", "b"]) is None
    redis.hset("rq:job:b", mapping={"status": "failed", "ended_at": utcformat(at(2)), "worker_name": "w2"})
    assert drain.rq_ends(redis, ["a", "b"]) == [
        (at(1).timestamp(), True, "w1"),
        (at(2).timestamp(), False, "w2"),
    ]


def test_celery_ends_wait_past_the_tutorial_tasks_progress_state(redis):
    redis.set("celery-task-meta-a", json.dumps({"status": "SUCCESS", "date_done": at(1).isoformat()}))
    redis.set("celery-task-meta-b", json.dumps({"status": "PROGRESS", "date_done": None}))
    assert drain.celery_ends(redis, ["a", "b"]) is None
    assert drain.celery_ends(redis, ["a", "c"]) is None  # not run yet: no result at all
    redis.set("celery-task-meta-b", json.dumps({"status": "FAILURE", "date_done": at(2).isoformat()}))
    assert drain.celery_ends(redis, ["a", "b"]) == [
        (at(1).timestamp(), True, None),
        (at(2).timestamp(), False, None),
    ]


def test_wait_drained_reads_the_ends_only_once_the_queues_are_empty(redis, monkeypatch):
    monkeypatch.setattr(drain, "POLL_S", 0.001)
    monkeypatch.setattr(drain, "MIN_TIMEOUT_S", 0.05)
    reads = []

    def read(connection, ids):
        reads.append(list(ids))
        return [(1.0, True, None)]

    redis.rpush("celery", "waiting")
    with pytest.raises(AssertionError, match="1 jobs drained not met"):
        drain.wait_drained(redis, ["a"], ["celery"], read)
    assert reads == []
    redis.delete("celery")
    assert drain.wait_drained(redis, ["a"], ["celery"], read) == [(1.0, True, None)]
    assert reads == [["a"]]


def sample(rate: float | None, **extra) -> dict:
    return {"jobs_per_s": rate, "jobs": 400, "failed": 0, "window_s": 1.0, "fill_s": 0.2, **extra}


def test_per_run_ratios_pair_runs_in_order_and_skip_a_failed_sample():
    raw = {
        ("drain_warm_1", OURS): [sample(500.0), sample(600.0), {"error": "not drained", "fill_s": 0.2}],
        ("drain_prefork_task_1", CELERY): [sample(400.0), sample(600.0), sample(500.0)],
    }
    per_run = report.drain_ratios(raw)
    assert per_run["drain_1_ours_over_tutorial"] == [1.25, 1.0]
    summary = report.summarize(raw)
    assert summary["ratios"]["drain_1_ours_over_tutorial"] == 1.12  # the median of 1.25 and 1.0, rounded
    assert summary["per_run_ratios"]["drain_1_noop_over_tutorial"] == []


def test_drain_tables_show_rates_and_per_run_ratios_and_say_what_failed():
    raw = {
        ("drain_warm_1", OURS): [sample(500.0), sample(600.0)],
        ("drain_prefork_task_1", CELERY): [sample(400.0), sample(600.0)],
        ("drain_warm_2", PLAIN): [sample(900.0, workers=2, all_working_after_s=0.02)],
        ("drain_fork_2", PLAIN): [{"error": "3 jobs drained not met", "fill_s": 0.1}],
    }
    results = {"summary": report.summarize(raw), "raw": {f"{f}|{s}": v for (f, s), v in raw.items()}}
    text = "\n".join(drain.markdown_lines(results))
    assert "| 1 | 550 | 500 | x1.12 (1.25 / 1.00) |" in text
    assert "| 2 | n/a / 900 | n/a / n/a |" in text
    assert "at most 20.0 ms after the first end" in text
    assert "1 sample(s) did not drain: 3 jobs drained not met" in text
