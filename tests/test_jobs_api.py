import pytest
from rq import Queue
from rq.job import Job

from support.apps import UNIT_SETTINGS, unreachable_redis_app
from web import create_app


def test_longtask_without_body_starts_the_random_demo(client, redis):
    response = client.post("/longtask")
    assert response.status_code == 202
    job_id = response.get_json()["id"]
    assert response.headers["Location"] == f"/status/{job_id}"
    assert response.get_json()["status_url"] == f"/status/{job_id}"
    job = Job.fetch(job_id, connection=redis)
    assert (job.func_name, job.kwargs) == ("jobs.demo.long_task", {"steps": None, "step_seconds": 1.0})


def test_longtask_body_sizes_the_job(client, redis):
    response = client.post("/longtask", json={"steps": 5, "step_seconds": 0.5})
    assert response.status_code == 202
    job = Job.fetch(response.get_json()["id"], connection=redis)
    assert job.kwargs == {"steps": 5, "step_seconds": 0.5}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": "many"}, "steps"),
        ({"step_seconds": 11}, "step_seconds"),
        ({"colour": "red"}, "colour"),
        ([1, 2], "object"),
        ("steps", "object"),
    ],
)
def test_bad_body_is_400_naming_the_field(client, body, named):
    response = client.post("/longtask", json=body)
    assert response.status_code == 400
    assert named in response.get_json()["error"]["message"]


@pytest.mark.parametrize("raw", [b"{", b"steps=3", b"\xff\xfe", b"NaN"])
def test_malformed_body_is_400(client, raw):
    response = client.post("/longtask", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == 400


def test_oversized_body_is_413(client):
    response = client.post("/longtask", data=b"{" + b" " * 100_000 + b"}", content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == 413


def test_wrong_method_is_405_json_with_allow(client):
    response = client.get("/longtask")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert response.get_json()["error"]["code"] == 405


def test_unknown_route_is_404_json(client):
    assert client.get("/nowhere").get_json()["error"]["code"] == 404


def test_redis_down_is_503_json():
    client = unreachable_redis_app().test_client()
    for response in (client.post("/longtask"), client.get("/status/abc")):
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == 503
        assert response.headers["Retry-After"]


@pytest.mark.parametrize("missing", ["SECRET_KEY", "REDIS_URL"])
def test_missing_required_setting_is_a_clear_startup_error(monkeypatch, missing):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    settings = {"SECRET_KEY": "k", "REDIS_URL": "redis://127.0.0.1:1/0"}
    settings[missing] = None
    with pytest.raises(RuntimeError, match=missing):
        create_app(settings)


def test_api_lists_the_startable_jobs_with_their_parameters(client):
    body = client.get("/api/jobs").get_json()
    jobs = {job["name"]: job for job in body["jobs"]}
    assert set(jobs) == {"long_task", "send_email"}
    assert jobs["long_task"]["parameters"]["properties"]["step_seconds"]["maximum"] == 10
    assert body["queues"] == ["high", "default", "low"]


def test_api_starts_a_registered_job(client, redis):
    response = client.post("/api/jobs", json={"name": "long_task", "args": {"steps": 3}, "queue": "low"})
    assert response.status_code == 202
    job_id = response.get_json()["id"]
    assert response.headers["Location"] == response.get_json()["status_url"] == f"/status/{job_id}"
    job = Job.fetch(job_id, connection=redis)
    assert (job.func_name, job.kwargs, job.origin) == (
        "jobs.demo.long_task",
        {"steps": 3, "step_seconds": 1.0},
        "low",
    )


def test_api_delayed_start_is_pending_with_an_eta(client):
    response = client.post("/api/jobs", json={"name": "long_task", "delay_seconds": 60})
    status = client.get(response.headers["Location"]).get_json()
    assert (status["state"], status["status"]) == ("PENDING", "Pending...")
    assert status["eta"].endswith("Z")


@pytest.mark.parametrize(
    ("body", "code", "named"),
    [
        ({"name": "rm -rf"}, 404, "known jobs: long_task, send_email"),
        ({"name": "jobs.demo.long_task"}, 404, "jobs.demo.long_task"),
        ({}, 400, "name"),
        ({"name": 3}, 400, "name"),
        ({"name": "long_task", "args": {"steps": 0}}, 400, "steps"),
        ({"name": "long_task", "args": {"nope": 1}}, 400, "nope"),
        ({"name": "send_email", "args": {"subject": "x"}}, 401, "start:send_email"),
        ({"name": "long_task", "args": [1]}, 400, "object"),
        ({"name": "long_task", "queue": "urgent"}, 400, "queue must be one of high, default, low"),
        ({"name": "long_task", "delay_seconds": -5}, 400, "delay_seconds"),
        ({"name": "long_task", "delay_seconds": None}, 400, "delay_seconds"),
        ({"name": "long_task", "priority": 1}, 400, "priority"),
        ([], 400, "object"),
    ],
)
def test_api_bad_start_names_what_is_wrong(client, body, code, named):
    response = client.post("/api/jobs", json=body)
    assert response.status_code == code
    assert response.get_json()["error"]["code"] == code
    assert named in response.get_json()["error"]["message"]


def test_api_oversized_body_is_413(client):
    body = b'{"name": "long_task", "args": {"x": "' + b"x" * 70_000 + b'"}}'
    assert client.post("/api/jobs", data=body, content_type="application/json").status_code == 413


def test_api_same_idempotency_key_gives_the_same_job(client, redis):
    headers = {"Idempotency-Key": "order-17"}
    first = client.post("/api/jobs", json={"name": "long_task"}, headers=headers)
    again = client.post("/api/jobs", json={"name": "long_task"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.get_json() == again.get_json()
    conflict = client.post("/api/jobs", json={"name": "long_task", "queue": "high"}, headers=headers)
    assert conflict.status_code == 409
    assert (
        client.post("/api/jobs", json={"name": "long_task"}, headers={"Idempotency-Key": ""}).status_code
        == 400
    )


def test_full_queue_is_503_with_retry_after_and_drops_nothing(redis):
    client = create_app({**UNIT_SETTINGS, "REDIS_CONNECTION": redis, "QUEUE_MAX_JOBS": 1}).test_client()
    assert client.post("/longtask").status_code == 202
    for response in (client.post("/longtask"), client.post("/api/jobs", json={"name": "long_task"})):
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert "full" in response.get_json()["error"]["message"]
    assert Queue("default", connection=redis).count == 1
    assert client.post("/api/jobs", json={"name": "long_task", "queue": "high"}).status_code == 202
