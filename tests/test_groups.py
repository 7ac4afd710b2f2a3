import pytest
from rq import Queue
from rq.group import Group
from rq.job import Job, JobStatus

from jobs import registry
from jobs.channel import publish
from jobs.contract import to_payload
from jobs.control import JobAlreadyEnded
from jobs.groups import MAX_JOBS
from jobs.params import Params
from support.apps import UNIT_SETTINGS
from support.sse import read_json_events
from tests.helpers import open_page
from web import create_app

DEMO = {"name": "long_task", "args": {"steps": 2, "step_seconds": 0}}


class Message(Params):
    message: str


@pytest.fixture
def failing_job(monkeypatch):
    """A registered job that fails with its message (for this test only)."""
    spec = registry.JobSpec(name="fails", func="tests.fixture_jobs.fail", params=Message, anonymous=True)
    monkeypatch.setitem(registry.CATALOG, "fails", spec)


def start_group(client, *jobs: dict) -> dict:
    """Start a group as a browser does: after loading the page, which gives it its identity."""
    open_page(client)
    response = client.post("/api/groups", json={"jobs": list(jobs)})
    assert response.status_code == 202, response.get_json()
    assert response.headers["Location"] == response.get_json()["status_url"]
    return response.get_json()


def test_a_group_starts_as_one_and_reads_back_in_order(client, redis):
    started = start_group(client, DEMO, {**DEMO, "queue": "high"}, DEMO)
    group_id = started["id"]
    assert started["status_url"] == f"/groups/{group_id}"
    assert [job["status_url"] for job in started["jobs"]] == [
        f"/status/{job['id']}" for job in started["jobs"]
    ]
    body = client.get(started["status_url"]).get_json()
    assert (body["state"], body["current"], body["total"], body["done"], body["failed"]) == (
        "PENDING",
        0,
        3,
        0,
        0,
    )
    assert [job["id"] for job in body["jobs"]] == [job["id"] for job in started["jobs"]]
    assert {job.id for job in Group(redis, group_id).get_jobs()} == {job["id"] for job in started["jobs"]}
    assert Job.fetch(started["jobs"][1]["id"], connection=redis).origin == "high"


def test_a_group_whose_jobs_all_succeed_is_success(client, run_queued):
    started = start_group(client, DEMO, DEMO)
    run_queued()
    body = client.get(started["status_url"]).get_json()
    assert (body["state"], body["current"], body["done"], body["status"]) == (
        "SUCCESS",
        2,
        2,
        "all 2 jobs done",
    )


def test_a_group_with_a_failing_job_ends_in_failure_once_all_have_ended(client, run_queued, failing_job):
    started = start_group(client, DEMO, {"name": "fails", "args": {"message": "no coolant"}})
    run_queued()
    body = client.get(started["status_url"]).get_json()
    assert (body["state"], body["done"], body["failed"]) == ("FAILURE", 2, 1)
    assert body["current"] == 1.5  # the failed job had reported 1 of 2
    assert body["jobs"][1]["status"] == "no coolant"


@pytest.mark.parametrize(
    ("jobs", "code", "names"),
    [
        ([DEMO, DEMO, {"name": "nope"}], 404, "jobs[2]"),
        ([DEMO, {"name": "long_task", "args": {"steps": 0}}], 400, "jobs[1]"),
        ([{**DEMO, "queue": "elsewhere"}], 400, "jobs[0].queue"),
        ([{**DEMO, "delay_seconds": 5}], 400, "jobs[0].delay_seconds"),
        ([], 400, "jobs"),
        ([DEMO] * (MAX_JOBS + 1), 400, "jobs"),
    ],
)
def test_a_group_with_one_job_that_does_not_fit_starts_nothing(client, redis, make_token, jobs, code, names):
    # With a token: a group is counted job by job against the anonymous start limit (60 a minute).
    response = client.post("/api/groups", json={"jobs": jobs}, headers=make_token("start:*"))
    assert response.status_code == code
    assert names in response.get_json()["error"]["message"]
    assert Queue("default", connection=redis).count == Queue("high", connection=redis).count == 0
    assert redis.smembers(Group.REDIS_GROUP_KEY) == set()


def test_a_group_that_would_overfill_a_queue_is_refused_whole(app, client, redis):
    app.config["QUEUE_MAX_JOBS"] = 2
    response = client.post("/api/groups", json={"jobs": [DEMO] * 3})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert Queue("default", connection=redis).count == 0


def test_cancel_ends_every_waiting_job_of_a_group(client):
    started = start_group(client, DEMO, DEMO)
    response = client.post(started["cancel_url"])
    assert response.status_code == 200
    body = response.get_json()
    assert (body["state"], body["failed"]) == ("FAILURE", 2)
    assert [job["status"] for job in body["jobs"]] == ["canceled", "canceled"]
    assert client.post(started["cancel_url"]).status_code == 409


def test_cancel_stops_running_jobs_after_canceling_waiting_ones(client, redis):
    started = start_group(client, DEMO, DEMO)
    running = Job.fetch(started["jobs"][0]["id"], connection=redis)
    running.set_status(JobStatus.STARTED)
    response = client.post(started["cancel_url"])
    assert response.status_code == 202  # no worker holds the "running" one: its stop is requested
    assert [job["state"] for job in response.get_json()["jobs"]] == ["PROGRESS", "FAILURE"]


def test_cancel_is_409_when_every_job_it_reaches_has_just_ended(client, redis, monkeypatch):
    started = start_group(client, DEMO, DEMO)
    for job in started["jobs"]:
        Job.fetch(job["id"], connection=redis).set_status(JobStatus.STARTED)

    def ended_just_before(connection, job_id, allowed=None):
        # The worker stored the stop after our read of the statuses (its final payload came first).
        Job.fetch(job_id, connection=connection).set_status(JobStatus.STOPPED)
        raise JobAlreadyEnded(f"job {job_id} has already ended")

    monkeypatch.setattr("jobs.groups.cancel_job", ended_just_before)
    response = client.post(started["cancel_url"])
    assert response.status_code == 409 and response.get_json()["error"]["code"] == 409


@pytest.mark.parametrize("group_id", ["never-made", "a:b", "x" * 300])
@pytest.mark.parametrize("suffix", ["", "/events"])
def test_an_unknown_group_is_404_json(client, group_id, suffix):
    response = client.get(f"/groups/{group_id}{suffix}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == 404


@pytest.fixture
def streaming_client(redis):
    """A client of an app whose fan-out listens (heartbeats far apart: updates come by pub/sub)."""
    settings = {"BACKGROUND_THREADS": True, "SSE_HEARTBEAT_S": 5.0, "LOST_JOB_CHECK_INTERVAL_S": 0}
    app = create_app({**UNIT_SETTINGS, "REDIS_CONNECTION": redis, **settings})
    yield app.test_client()
    app.extensions["events"].close()


def test_a_groups_stream_folds_each_jobs_update_in_until_the_group_ends(streaming_client, redis):
    client = streaming_client
    started = start_group(client, DEMO, DEMO)
    first, second = (job["id"] for job in started["jobs"])
    with client.get(started["events_url"], buffered=False) as response:
        chunks = iter(response.response)
        assert read_json_events(chunks, 1)[0]["state"] == "PENDING"
        running = {
            "progress": {"current": 1, "total": 2, "status": "half", "updated_at": "2099-01-01T00:00:00Z"}
        }
        publish(redis, to_payload(first, JobStatus.STARTED, running))
        update = read_json_events(chunks, 1)[0]
        assert (update["state"], update["current"], update["jobs"][0]["status"]) == ("PROGRESS", 0.5, "half")
        publish(redis, to_payload(first, JobStatus.FINISHED, {}, result=1))
        publish(redis, to_payload(second, JobStatus.FAILED, {"error": "boom"}))
        updates = read_json_events(chunks)
    assert [(update["state"], update["done"]) for update in updates] == [("PROGRESS", 1), ("FAILURE", 2)]


def test_a_head_request_on_a_groups_stream_leaves_no_stream(streaming_client):
    started = start_group(streaming_client, DEMO, DEMO)
    with streaming_client.head(started["events_url"]) as response:
        assert response.status_code == 200
    assert streaming_client.application.extensions["events"].streams() == 0


MAIL = {"name": "send_email", "args": {"to": ["a@example.com"], "subject": "Hi"}}


@pytest.mark.parametrize(
    ("scopes", "code"), [(None, 401), (("start:long_task",), 403), (("start:send_email",), 202)]
)
def test_a_group_with_a_closed_job_needs_a_token_with_its_scope(client, redis, make_token, scopes, code):
    headers = make_token(*scopes) if scopes is not None else {}
    response = client.post("/api/groups", json={"jobs": [DEMO, MAIL]}, headers=headers)
    assert response.status_code == code
    assert Queue("default", connection=redis).count == (2 if code == 202 else 0)


def test_only_who_started_a_group_may_cancel_it(app, client, make_token):
    started = start_group(client, DEMO, DEMO)
    stranger = app.test_client()
    open_page(stranger)
    response = stranger.post(started["cancel_url"])
    assert response.status_code == 403
    assert client.get(started["status_url"]).get_json()["state"] == "PENDING"
    assert client.post(started["cancel_url"], headers=make_token("cancel:any")).status_code == 200


@pytest.mark.parametrize("path", ["/api/groups", "/groups/{id}/cancel"])
def test_group_routes_refuse_cross_site_requests(client, path):
    started = start_group(client, DEMO)
    response = client.post(
        path.format(id=started["id"]), json={"jobs": [DEMO]}, headers={"Origin": "https://elsewhere.example"}
    )
    assert response.status_code == 403
    assert client.get(started["status_url"]).get_json()["state"] == "PENDING"


def test_each_job_of_an_anonymous_group_counts_against_the_start_limit(redis):
    app = create_app({**UNIT_SETTINGS, "REDIS_CONNECTION": redis, "START_RATE_LIMIT": 5})
    client = app.test_client()
    assert client.post("/api/groups", json={"jobs": [DEMO] * 3}).status_code == 202
    response = client.post("/api/groups", json={"jobs": [DEMO] * 3})
    assert response.status_code == 429 and response.headers["Retry-After"]
    assert Queue("default", connection=redis).count == 3


def test_a_group_refused_at_the_cap_leaves_nothing_of_itself(app, client, redis, queue):
    app.config["QUEUE_MAX_JOBS"] = 2
    waiting = queue.enqueue("tests.fixture_jobs.answer")
    open_page(client)
    response = client.post("/api/groups", json={"jobs": [{**DEMO, "queue": "high"}, DEMO, DEMO]})
    assert response.status_code == 503
    assert redis.keys("rq:job:*") == [f"rq:job:{waiting.id}".encode()]
    assert (Queue("high", connection=redis).count, queue.count) == (0, 1)
    assert redis.smembers(Group.REDIS_GROUP_KEY) == set() and not redis.keys("rq:group:*")


def test_a_groups_stream_goes_to_the_streams_listener_like_a_jobs(redis):
    client = create_app({**UNIT_SETTINGS, "REDIS_CONNECTION": redis, "EVENTS_PORT": 5001}).test_client()
    started = start_group(client, DEMO)
    assert started["events_url"] == f"http://localhost:5001/groups/{started['id']}/events"
    response = client.get(f"/groups/{started['id']}/events?lastEventId=7")
    assert response.status_code == 307
    assert response.headers["Location"] == started["events_url"] + "?lastEventId=7"
