from datetime import datetime

from rq import Retry
from rq.job import JobStatus
from rq.utils import import_attribute

from jobs import callbacks
from jobs.callbacks import CALLBACKS, initial_meta
from jobs.snapshot import snapshot


def test_failure_callback_keeps_the_message_and_publishes_failure(redis, queue, run_queued, published):
    job = queue.enqueue("tests.fixture_jobs.fail", "the disk is on fire", **CALLBACKS)
    run_queued()
    final_event = published()[-1]
    assert final_event["state"] == "FAILURE"
    assert final_event["status"] == "the disk is on fire"
    assert snapshot(job.id, redis)["status"] == "the disk is on fire"


def test_exception_without_message_reports_its_type(redis, queue, run_queued, published):
    job = queue.enqueue("tests.fixture_jobs.fail_without_message", **CALLBACKS)
    run_queued()
    assert published()[-1]["status"] == "KeyError"
    assert snapshot(job.id, redis)["status"] == "KeyError"


def test_a_stopped_job_is_not_retried(redis, queue, run_queued):
    job = queue.enqueue(
        "tests.fixture_jobs.count_until_stopped", 10, retry=Retry(max=3), meta=initial_meta(3), **CALLBACKS
    )
    run_queued()
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert snapshot(job.id, redis)["status"] == "stopped"


def test_waiting_retry_publishes_pending_with_the_attempt_and_eta(redis, queue, run_queued, published):
    job = queue.enqueue(
        "tests.fixture_jobs.fail_times",
        "attempts",
        5,
        retry=Retry(max=2, interval=[10, 20]),
        meta=initial_meta(2),
        **CALLBACKS,
    )
    run_queued()
    event = published()[-1]
    assert (event["state"], event["status"]) == ("PENDING", "retrying 1/2 in 10 s")
    assert job.get_status(refresh=True) == JobStatus.SCHEDULED
    stored = snapshot(job.id, redis)
    assert stored["state"] == "PENDING"
    assert stored["status"] in ("retrying 1/2 in 10 s", "retrying 1/2 in 9 s")
    published_eta, stored_eta = (datetime.fromisoformat(payload["eta"]) for payload in (event, stored))
    assert abs((published_eta - stored_eta).total_seconds()) < 1.5


def test_final_failure_after_retries_reports_the_last_error(redis, queue, run_queued, published):
    job = queue.enqueue(
        "tests.fixture_jobs.fail_times", "attempts", 5, retry=Retry(max=2), meta=initial_meta(2), **CALLBACKS
    )
    run_queued()
    events = [event for event in published() if event["state"] != "PROGRESS"]
    assert [event["status"] for event in events] == ["retrying 1/2", "retrying 2/2", "attempt 3 failed"]
    assert events[-1]["state"] == "FAILURE"
    assert snapshot(job.id, redis)["status"] == "attempt 3 failed"


def test_retried_job_that_recovers_succeeds(redis, queue, run_queued):
    job = queue.enqueue(
        "tests.fixture_jobs.fail_times", "attempts", 1, retry=Retry(max=2), meta=initial_meta(2), **CALLBACKS
    )
    run_queued()
    assert snapshot(job.id, redis)["result"] == "succeeded on attempt 2"


def test_every_enqueue_gets_the_three_callbacks_by_dotted_path():
    assert {name: callback.name for name, callback in CALLBACKS.items()} == {
        "on_success": "jobs.callbacks.on_success",
        "on_failure": "jobs.callbacks.on_failure",
        "on_stopped": "jobs.callbacks.on_stopped",
    }


def test_callbacks_of_jobs_enqueued_before_the_move_still_resolve():
    for name in ("on_success", "on_failure", "on_stopped"):
        assert import_attribute(f"jobs.progress.{name}") is getattr(callbacks, name)
