"""The lost-job check judges heartbeats by Redis's clock, so a web host's wrong clock fails no live job."""

import time
import uuid

from jobs.snapshot import snapshot
from tests.test_reaper import started_with_deadline_in
from web import reaper


def test_a_web_host_clock_20_s_ahead_fails_no_live_job(redis_client, monkeypatch):
    queue = f"clock-{uuid.uuid4().hex[:6]}"  # no worker listens here
    live = started_with_deadline_in(redis_client, 60, queue)  # a live job at its closest to the cutoff
    lost = started_with_deadline_in(redis_client, 30, queue)  # heartbeat ~35 s stale
    host_clock = time.time
    monkeypatch.setattr(time, "time", lambda: host_clock() + 20)
    reaper.reap_lost_jobs(redis_client)
    assert snapshot(live.id, redis_client)["state"] == "PROGRESS"
    assert snapshot(lost.id, redis_client)["status"].startswith("worker lost")
