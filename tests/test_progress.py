import json
from datetime import datetime

import pytest
from rq import Callback, Retry
from rq.job import JobStatus

from jobs.progress import (
    STOP_REQUEST_TTL_S,
    channel_for,
    initial_meta,
    report,
    request_stop,
    resume_point,
    stop_key,
    stop_requested,
)
from jobs.snapshot import snapshot

CALLBACKS = {
    "on_success": Callback("jobs.progress.on_success"),
    "on_failure": Callback("jobs.progress.on_failure"),
    "on_stopped": Callback("jobs.progress.on_stopped"),
}


@pytest.fixture
def published(redis):
    """Collect what is published on any job channel, in order."""
    pubsub = redis.pubsub()
    pubsub.psubscribe(channel_for("*"))

    def drain() -> list[dict]:
        messages = []
        while (message := pubsub.get_message(timeout=0.01)) is not None:
            if message["type"] == "pmessage":
                messages.append(json.loads(message["data"]))
        return messages

    yield drain
    pubsub.close()


def test_report_outside_a_job_does_nothing():
    assert report(1, 2, "no job here") is False


def test_updates_are_coalesced_and_the_last_is_never_dropped(queue, run_queued, published):
    job = queue.enqueue("tests.fixture_jobs.report_at", [0.0, 0.01, 0.02, 0.15, 0.16], 10, **CALLBACKS)
    run_queued()
    events = published()
    assert [(event["state"], event["current"]) for event in events] == [
        ("PROGRESS", 1),
        ("PROGRESS", 4),
        ("PROGRESS", 5),
        ("SUCCESS", 10),
    ]
    assert job.get_meta(refresh=True)["progress"]["current"] == 5


def test_the_update_that_reaches_total_is_saved_at_once(queue, run_queued, published):
    queue.enqueue("tests.fixture_jobs.report_at", [0.0, 0.01, 0.02], 3)
    run_queued()
    assert [event["current"] for event in published()] == [1, 3]


def test_rate_comes_from_the_environment(queue, run_queued, published, monkeypatch):
    monkeypatch.setenv("PROGRESS_MAX_SAVES_PER_S", "1000")
    queue.enqueue("tests.fixture_jobs.report_at", [0.0, 0.01, 0.02], 10)
    run_queued()
    assert [event["current"] for event in published()] == [1, 2, 3]


def test_published_payload_matches_the_stored_one(redis, queue, run_queued, published):
    job = queue.enqueue("tests.fixture_jobs.count", 1, **CALLBACKS)
    run_queued()
    progress_event, final_event = published()
    assert progress_event["updated_at"] == job.get_meta(refresh=True)["progress"]["updated_at"]
    assert final_event == snapshot(job.id, redis)


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


def test_report_raises_stop_requested_after_the_save_that_sees_the_request(
    redis, queue, run_queued, published
):
    job = queue.enqueue("tests.fixture_jobs.count_until_stopped", 10, **CALLBACKS)
    run_queued()
    events = published()
    assert [event["current"] for event in events[:-1]] == [1, 2, 3]
    assert (events[-1]["state"], events[-1]["status"]) == ("FAILURE", "stopped")
    assert snapshot(job.id, redis)["status"] == "stopped"


def test_a_stopped_job_is_not_retried(redis, queue, run_queued):
    job = queue.enqueue(
        "tests.fixture_jobs.count_until_stopped", 10, retry=Retry(max=3), meta=initial_meta(3), **CALLBACKS
    )
    run_queued()
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert snapshot(job.id, redis)["status"] == "stopped"


def test_stop_requested_reads_the_key_the_cancel_route_writes(redis, queue):
    job = queue.enqueue("tests.fixture_jobs.answer")
    assert stop_requested(job) is False
    request_stop(redis, job.id)
    assert stop_requested(job) is True
    assert 0 < redis.ttl(stop_key(job.id)) <= STOP_REQUEST_TTL_S
    assert stop_requested() is False


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


def test_resume_point_is_zero_outside_a_job():
    assert resume_point() == 0
