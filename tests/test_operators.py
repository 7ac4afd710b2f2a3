"""Operators: dashboard auth and origin checks, /healthz, /metrics, on fakeredis."""

import base64

import pytest
from rq import Worker

from jobs.registry import start_job
from support.apps import UNIT_SETTINGS, unreachable_redis_app
from web import create_app

USER, PASSWORD = "ops", "correct horse battery staple"


def basic(user: str, password: str) -> dict[str, str]:
    """An Authorization header for HTTP basic auth."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


GOOD = basic(USER, PASSWORD)


@pytest.fixture
def ops_app(redis):
    """The app with the dashboard mounted."""
    return create_app(
        {
            **UNIT_SETTINGS,
            "REDIS_CONNECTION": redis,
            "RQ_DASHBOARD_USERNAME": USER,
            "RQ_DASHBOARD_PASSWORD": PASSWORD,
        }
    )


def dashboard_urls(
    app, prefixes=("rq_dashboard.",), queue="default", skip=frozenset()
) -> list[tuple[str, str]]:
    """(method, URL) for every rule whose endpoint starts with one of `prefixes`, with sample arguments."""
    samples = {"instance_number": 0, "per_page": 8, "page": 1, "order": "asc", "registry_name": "failed"}
    samples.update(queue_name=queue, job_id="no-such-job", group_id="no-such-group", filename="favicon.ico")
    urls = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if not rule.endpoint.startswith(tuple(prefixes)) or rule.endpoint in skip:
                continue
            values = {arg: samples[arg] for arg in rule.arguments if arg not in (rule.defaults or {})}
            url = app.url_for(rule.endpoint, **values)
            urls += [(method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return urls


def test_dashboard_urls_cover_json_posts_and_pages(ops_app):
    urls = dashboard_urls(ops_app)
    assert ("GET", "/rq/0/data/queues.json") in urls
    assert ("POST", "/rq/job/no-such-job/requeue") in urls
    assert all(url.startswith("/rq/") for _, url in urls) and len(urls) > 15


@pytest.mark.parametrize(
    "headers", [{}, basic(USER, "wrong"), basic("root", PASSWORD), {"Authorization": "Basic !!"}]
)
def test_every_dashboard_route_answers_401_without_the_right_credentials(ops_app, headers):
    client = ops_app.test_client()
    for method, url in dashboard_urls(ops_app) + [("GET", "/rq/1/data/queues.json")]:
        response = client.open(url, method=method, headers=headers)
        assert response.status_code == 401, (method, url)
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
        assert response.json["error"]["code"] == 401


def test_dashboard_answers_with_the_right_credentials(ops_app, redis):
    start_job(redis, "long_task", {"steps": 1})
    client = ops_app.test_client()
    assert client.get("/rq/", headers=GOOD).status_code == 200
    queues = client.get("/rq/0/data/queues.json", headers=GOOD).json["queues"]
    assert [queue["name"] for queue in queues] == ["default"]
    assert client.get("/rq/1/data/queues.json", headers=GOOD).status_code == 404


def test_dashboard_uses_the_apps_own_redis_client(ops_app, redis):
    client = ops_app.test_client()
    client.get("/rq/0/data/workers.json", headers=GOOD)
    assert ops_app.redis_conn is redis


def test_dashboard_is_off_without_both_credentials(redis):
    app = create_app({**UNIT_SETTINGS, "REDIS_CONNECTION": redis, "RQ_DASHBOARD_USERNAME": USER})
    response = app.test_client().get("/rq/0/data/queues.json", headers=GOOD)
    assert response.status_code == 404 and response.json["error"]["code"] == 404


def test_a_second_app_mounts_the_dashboard_too(ops_app, redis):
    second = create_app({**ops_app.config, "REDIS_CONNECTION": redis})
    assert second.test_client().get("/rq/0/data/queues.json", headers=GOOD).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "https://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Sec-Fetch-Site": "same-site"}, 403),
        ({"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}, 200),
        ({}, 200),
    ],
)
def test_state_changing_requests_must_come_from_this_origin(ops_app, redis, headers, status):
    start_job(redis, "long_task", {"steps": 1})  # rq's compact() fails on a queue that was never used
    client = ops_app.test_client()
    response = client.post("/rq/queue/default/compact", headers={**GOOD, **headers})
    assert response.status_code == status
    requeue = client.get("/rq/requeue/default", headers={**GOOD, **headers})
    assert requeue.status_code == status


def test_reading_pages_from_a_link_elsewhere_is_allowed(ops_app):
    response = ops_app.test_client().get("/rq/", headers={**GOOD, "Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200


def test_healthz_counts_live_workers_per_queue(client, redis, queue):
    Worker([queue], connection=redis, name="w1").register_birth()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "redis": "ok", "workers": {"high": 0, "default": 1, "low": 0}}


def test_healthz_and_metrics_answer_503_json_when_redis_is_down():
    client = unreachable_redis_app().test_client()
    for url in ("/healthz", "/metrics"):
        response = client.get(url)
        assert response.status_code == 503 and response.json["error"]["code"] == 503
        assert response.headers["Retry-After"]


def test_metrics_report_queues_states_workers_and_durations(client, redis, queue, run_queued):
    start_job(redis, "long_task", {"steps": 1, "step_seconds": 0})
    run_queued()
    start_job(redis, "long_task", {"steps": 1, "step_seconds": 0})
    worker = Worker([queue], connection=redis, name="w1")
    worker.register_birth()
    worker.set_state("idle")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    assert 'rq_queue_length{queue="default"} 1.0' in text
    assert 'rq_jobs{queue="default",status="finished"} 1.0' in text
    assert 'rq_workers{state="idle"} 1.0' in text
    assert 'rq_queue_workers{queue="default"} 1.0' in text
    assert 'rq_job_duration_seconds_count{outcome="success",queue="default"} 1.0' in text
    assert 'rq_job_duration_seconds_bucket{le="+Inf",outcome="success",queue="default"} 1.0' in text
