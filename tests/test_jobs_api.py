import pytest
from rq.job import Job

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
    from redis import Redis

    from tests.helpers import free_port

    dead = Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    client = create_app({"SECRET_KEY": "k", "REDIS_CONNECTION": dead}).test_client()
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
