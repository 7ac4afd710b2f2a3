"""Redis as a fact of life: its clock is the one the lost-job check trusts, and a full one refuses writes."""

import time
import uuid

from jobs.snapshot import snapshot
from support.apps import UNIT_SETTINGS
from support.servers import start_embedded_redis
from tests.test_reaper import started_with_deadline_in
from web import create_app, reaper


def test_a_web_host_clock_20_s_ahead_fails_no_live_job(redis_client, monkeypatch):
    queue = f"clock-{uuid.uuid4().hex[:6]}"  # no worker listens here
    live = started_with_deadline_in(redis_client, 60, queue)  # a live job at its closest to the cutoff
    lost = started_with_deadline_in(redis_client, 30, queue)  # heartbeat ~35 s stale
    host_clock = time.time
    monkeypatch.setattr(time, "time", lambda: host_clock() + 20)
    reaper.reap_lost_jobs(redis_client)
    assert snapshot(live.id, redis_client)["state"] == "PROGRESS"
    assert snapshot(lost.id, redis_client)["status"].startswith("worker lost")


def test_a_full_redis_refusing_writes_makes_starts_503_json():
    server = start_embedded_redis()  # its own server: the test changes its config
    try:
        app = create_app({**UNIT_SETTINGS, "REDIS_URL": server.connection_url + "/0"})
        app.extensions["rq"]["redis"].config_set("maxmemory", 1)  # noeviction: every write is refused
        response = app.test_client().post("/longtask", json={"steps": 1})
        assert response.status_code == 503
        assert response.headers["Retry-After"] and response.get_json()["error"]["code"] == 503
    finally:
        server.stop()
