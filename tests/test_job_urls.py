from datetime import UTC, datetime, timedelta

import pytest
from rq.job import Job, JobStatus

from support.apps import UNIT_SETTINGS
from tests.helpers import start_demo
from web import create_app


def start(client, **body) -> str:
    """Start the demo job; returns its status URL."""
    return start_demo(client, **body)["status_url"]


def test_queued_job_is_pending(client):
    status_url = start(client, steps=2, step_seconds=0)
    body = client.get(status_url).get_json()
    assert (body["state"], body["current"], body["total"], body["status"]) == ("PENDING", 0, 1, "Pending...")
    assert body["id"] == status_url.rsplit("/", 1)[1]
    assert body["updated_at"].endswith("Z")


def test_finished_demo_job_shows_the_tutorial_result(client, run_queued):
    status_url = start(client, steps=3, step_seconds=0)
    run_queued()
    body = client.get(status_url).get_json()
    assert body["state"] == "SUCCESS"
    assert (body["current"], body["total"], body["status"], body["result"]) == (
        100,
        100,
        "Task completed!",
        42,
    )


@pytest.mark.parametrize("status", [JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED])
def test_status_reflects_the_stored_rq_status(client, redis, status):
    status_url = start(client, steps=2, step_seconds=0)
    job = Job.fetch(status_url.rsplit("/", 1)[1], connection=redis)
    job.set_status(status)
    expected = {"started": "PROGRESS", "deferred": "PENDING", "scheduled": "PENDING"}[status.value]
    assert client.get(status_url).get_json()["state"] == expected


def test_job_enqueued_with_rqs_own_api_is_visible(client, queue, run_queued):
    job = queue.enqueue("jobs.long_task", steps=2, step_seconds=0)
    assert client.get(f"/status/{job.id}").get_json()["state"] == "PENDING"
    run_queued()
    body = client.get(f"/status/{job.id}").get_json()
    assert (body["state"], body["result"]) == ("SUCCESS", 42)


def test_failed_job_without_callbacks_reports_its_message_not_a_traceback(client, queue, run_queued):
    job = queue.enqueue("tests.fixture_jobs.fail", "out of cheese")
    run_queued()
    body = client.get(f"/status/{job.id}").get_json()
    assert (body["state"], body["status"]) == ("FAILURE", "out of cheese")
    assert "result" not in body


@pytest.mark.parametrize(
    "job_id",
    ["no-such-job", "a:b", "a.b", "x" * 300, "%00", "..%2F..%2Fetc", "%E2%98%83", "a%20b"],
)
def test_unknown_or_malformed_id_is_404_json(client, job_id):
    response = client.get(f"/status/{job_id}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == 404


def test_expired_job_is_404(client, redis):
    status_url = start(client, steps=2, step_seconds=0)
    Job.fetch(status_url.rsplit("/", 1)[1], connection=redis).delete()
    assert client.get(status_url).status_code == 404


@pytest.fixture
def split_client(redis):
    """A client of a process that sends clients to the streams listener on port 5001."""
    return create_app({**UNIT_SETTINGS, "REDIS_CONNECTION": redis, "EVENTS_PORT": 5001}).test_client()


def test_with_an_events_listener_events_urls_point_at_it_on_the_clients_host(split_client):
    body = start_demo(split_client)
    assert body["events_url"] == f"http://localhost:5001/status/{body['id']}/events"
    assert body["status_url"] == f"/status/{body['id']}"
    response = split_client.post("/longtask", base_url="http://[::1]:5000")
    assert response.get_json()["events_url"].startswith("http://[::1]:5001/status/")


def test_the_page_may_connect_to_the_streams_listener_and_nowhere_else(split_client):
    policy = split_client.get("/", base_url="http://localhost:5000").headers["Content-Security-Policy"]
    assert "connect-src 'self' http://localhost:5001;" in policy


def test_a_stream_asked_of_a_process_that_does_not_serve_them_is_redirected(split_client):
    body = start_demo(split_client)
    response = split_client.get(f"/status/{body['id']}/events", base_url="http://localhost:5000")
    assert response.status_code == 307
    assert response.headers["Location"] == body["events_url"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/status/a:b/events", 404),
        ("/status/abc/events?lastEventId=7", 400),
        ("/status/abc/events?lastEventId=1-1-1", 400),
        ("/groups/a:b/events", 404),
    ],
)
def test_a_malformed_stream_request_is_refused_here_not_redirected(split_client, path, status):
    response = split_client.get(path, base_url="http://localhost:5000")
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == status


def test_an_empty_last_event_id_header_is_refused_and_an_empty_query_means_from_the_start(split_client):
    assert split_client.get("/status/abc/events", headers={"Last-Event-ID": ""}).status_code == 400
    assert split_client.get("/status/abc/events?lastEventId=").status_code == 307


def test_both_streams_document_their_redirect(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for path in ("/status/{job_id}/events", "/groups/{group_id}/events"):
        assert "307" in paths[path]["get"]["responses"]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [("http://localhost:5000", True), ("https://evil.example", False), ("null", False), (None, False)],
)
def test_a_stream_lets_pages_of_its_own_host_read_it_across_ports(client, redis, origin, allowed):
    job_id = start_demo(client)["id"]
    Job.fetch(job_id, connection=redis).set_status(JobStatus.FAILED)  # a terminal state: the stream ends
    headers = {"Origin": origin} if origin else {}
    response = client.get(f"/status/{job_id}/events", base_url="http://localhost:5001", headers=headers)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert response.headers.get("Access-Control-Allow-Origin") == (origin if allowed else None)


def test_a_running_job_without_saved_progress_for_its_stall_after_s_is_stalled_not_failed(client, redis):
    status_url = start(client, steps=2, step_seconds=0)
    job = Job.fetch(status_url.rsplit("/", 1)[1], connection=redis)
    job.started_at = datetime.now(UTC) - timedelta(seconds=181)
    job.save()
    job.set_status(JobStatus.STARTED)
    body = client.get(status_url).get_json()
    assert (body["state"], body["stalled"], body["status"], body["remaining_s"]) == (
        "PROGRESS",
        True,
        "no progress for 3 min",
        None,
    )
