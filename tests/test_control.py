import json
import time

import pytest
from rq.command import PUBSUB_CHANNEL_TEMPLATE
from rq.job import Job, JobStatus

from jobs.control import STOP_REQUEST_TTL_S, request_stop, stop_requested
from jobs.keys import channel_for, stop_key


def next_message(pubsub, timeout_s=2.0):
    """The data of the next published message (subscribe confirmations skipped), or fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.05)
        if message is not None and message["type"] == "message":
            return json.loads(message["data"])
    raise AssertionError(f"nothing published within {timeout_s} s")


@pytest.fixture
def cancel(make_token):
    """Cancel as an operator would: jobs enqueued with RQ's own API belong to nobody."""
    operator = make_token("cancel:any")

    def cancel(client, job_id):
        return client.post(f"/status/{job_id}/cancel", headers=operator)

    return cancel


def test_queued_job_is_canceled_and_the_end_is_published(client, queue, redis, cancel):
    job = queue.enqueue("tests.fixture_jobs.answer")
    pubsub = redis.pubsub()
    pubsub.subscribe(channel_for(job.id))
    response = cancel(client, job.id)
    assert response.status_code == 200
    assert (response.get_json()["state"], response.get_json()["status"]) == ("FAILURE", "canceled")
    assert next_message(pubsub)["status"] == "canceled"
    assert client.get(f"/status/{job.id}").get_json()["status"] == "canceled"
    assert job.id not in queue.get_job_ids()


def test_canceled_job_never_runs(client, queue, run_queued, cancel):
    job = queue.enqueue("jobs.long_task", steps=2, step_seconds=0)
    cancel(client, job.id)
    run_queued()
    assert Job.fetch(job.id, connection=queue.connection).get_status() == JobStatus.CANCELED


def test_scheduled_job_is_canceled(client, queue, cancel):
    from datetime import timedelta

    job = queue.enqueue_in(timedelta(minutes=5), "tests.fixture_jobs.answer")
    assert cancel(client, job.id).get_json()["status"] == "canceled"
    assert job.id not in queue.scheduled_job_registry.get_job_ids()


def test_running_job_gets_rqs_stop_command_for_its_worker(client, queue, redis, cancel):
    job = queue.enqueue("tests.fixture_jobs.answer")
    job.worker_name = "worker-1"
    job.save()
    job.set_status(JobStatus.STARTED)
    commands = redis.pubsub()
    commands.subscribe(PUBSUB_CHANNEL_TEMPLATE % "worker-1")
    response = cancel(client, job.id)
    assert response.status_code == 202
    assert response.get_json()["state"] == "PROGRESS"
    command = next_message(commands)
    assert command == {"command": "stop-job", "job_id": job.id}


@pytest.mark.parametrize(
    "status", [JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED]
)
def test_ended_job_is_409_json(client, queue, status, cancel):
    job = queue.enqueue("tests.fixture_jobs.answer")
    job.set_status(status)
    response = cancel(client, job.id)
    assert response.status_code == 409
    assert status.value in response.get_json()["error"]["message"]


def test_canceling_twice_is_409(client, queue, cancel):
    job = queue.enqueue("tests.fixture_jobs.answer")
    assert cancel(client, job.id).status_code == 200
    assert cancel(client, job.id).status_code == 409


@pytest.mark.parametrize("job_id", ["never-enqueued", "a:b"])
def test_unknown_job_is_404_json(client, job_id, cancel):
    response = cancel(client, job_id)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == 404


def test_cancel_needs_post(client, queue):
    response = client.get(f"/status/{queue.enqueue('tests.fixture_jobs.answer').id}/cancel")
    assert response.status_code == 405


def test_stop_requested_reads_the_key_the_cancel_route_writes(redis, queue):
    job = queue.enqueue("tests.fixture_jobs.answer")
    assert stop_requested(job) is False
    request_stop(redis, job.id)
    assert stop_requested(job) is True
    assert 0 < redis.ttl(stop_key(job.id)) <= STOP_REQUEST_TTL_S
    assert stop_requested() is False
