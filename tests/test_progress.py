import json

import pytest
from rq import Callback

from jobs.progress import channel_for, report
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
