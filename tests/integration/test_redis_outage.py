"""A Redis restart or failover fails no job: workers ride it out (`jobs.outage`), jobs end once.

A persisting Valkey (AOF, `appendfsync always`) is SIGKILLed and started again on its files, for
3 s and for 20 s; a Sentinel-managed primary is SIGKILLed and a replica takes over. Each time
four workers are each in one state: running a job through the outage, running a job that ends
during it, idle, and running a job asked to stop just before it. Every job must end SUCCESS
(the stopped one "stopped"), taken and ended once, and nothing stays queued or started; the
web answers 503 meanwhile and its event streams resume. A job whose worker is SIGKILLed during
an outage, or whose worker gives up past its grace, is reported lost once Redis is back.
"""

import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import StartedJobRegistry

from bench.chaos_report import TAKEN
from jobs.connection import connect, target_from
from support.proctree import group_leaders_under
from support.sentinel import SentinelCluster
from support.servers import kill_group, start_web, start_worker, stop_process
from support.wait import wait_until
from tests.integration.test_sentinel import follow, start_sentinel_worker

# The web's lost-job check looks further ahead than in production (fails a dead worker's job ~10 s
# after its last heartbeat, not ~25 s): quicker, and a live job survives a 20 s outage only because
# the check holds its judgement after one (web/reaper.py).
LOOKAHEAD_S = 55
ROLES = ("running", "ending", "idle", "stopped")
# Steps of 0.1 s: the running job outlasts the outage, the ending one ends during it.
STEPS = {"running": 60, "ending": 15}


@dataclass
class Site:
    """Redis (plain or Sentinel), the web, and one worker per role, each on its own queue."""

    cluster: SentinelCluster
    client: Redis
    base: str
    queues: dict[str, str]
    workers: dict[str, tuple]  # role -> (process, log path)
    env: dict[str, str]
    http: requests.Session  # who starts the jobs (only they may cancel them)


@contextmanager
def site(
    tmp_path: Path,
    logs_dir: Path,
    sentinel: bool,
    roles: tuple[str, ...] = ROLES,
    worker_env: dict[str, dict[str, str]] | None = None,
) -> Iterator[Site]:
    cluster = SentinelCluster(tmp_path, replicas=1 if sentinel else 0, sentinels=3 if sentinel else 0)
    cluster.start()
    if sentinel:
        env = {**cluster.env(), "REDIS_URL": ""}
    else:
        env = {"REDIS_URL": f"redis://127.0.0.1:{cluster.primary_port()}/0"}
    client = connect(target_from(env), timeout_s=2, ride_out_s=60)
    tag = uuid.uuid4().hex[:6]
    queues = {role: f"outage-{tag}-{role}" for role in roles}
    web_env = {**env, "QUEUES": ",".join(queues.values()), "LOST_JOB_LOOKAHEAD_S": str(LOOKAHEAD_S)}
    web, base = start_web(env.get("REDIS_URL", ""), logs_dir, {**web_env, "SSE_HEARTBEAT_S": "1"})
    workers = {}
    try:
        for role, queue in queues.items():
            if sentinel:
                process, name = start_sentinel_worker(env, logs_dir, queues=(queue,))
                wait_until(lambda name=name: name in [w.name for w in Worker.all(connection=client)], 20)
            else:
                extra = (worker_env or {}).get(role)
                process, name = start_worker(
                    env["REDIS_URL"], logs_dir, queues=(queue,), scheduler=False, env=extra
                )
            workers[role] = (process, logs_dir / f"worker-{name}.log")
        with requests.Session() as http:
            assert http.get(f"{base}/", timeout=5).status_code == 200  # a browser's identity: it may cancel
            yield Site(cluster, client, base, queues, workers, env, http)
    finally:
        for process, _ in workers.values():
            stop_process(process)
        stop_process(web)
        cluster.stop()


def start(s: Site, role: str, steps: int) -> str:
    body = {"name": "long_task", "args": {"steps": steps, "step_seconds": 0.1}, "queue": s.queues[role]}
    response = s.http.post(f"{s.base}/api/jobs", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def status(base: str, job_id: str) -> dict:
    return requests.get(f"{base}/status/{job_id}", timeout=5).json()


def redis_down(s: Site, down_s: float, sentinel: bool, job_id: str) -> None:
    """SIGKILL Redis (the primary); start it again on its AOF `down_s` later, or wait for the failover.

    The wait is the fault's length, not a synchronisation: the workers must meet Redis away.
    """
    port = s.cluster.primary_port()
    node = s.cluster.node(port)
    s.cluster.kill(port)
    status_url = f"{s.base}/status/{job_id}"
    # A Response is falsy when it is an error: wrap it.
    (outage,) = wait_until(lambda: (r := requests.get(status_url, timeout=5)).status_code == 503 and (r,))
    assert outage.json()["error"]["code"] == 503 and outage.headers["Retry-After"]
    if sentinel:
        s.cluster.wait_for_new_primary(port)
    else:
        back_at = time.monotonic() + down_s
        wait_until(lambda: time.monotonic() >= back_at, down_s + 1, interval_s=0.1, what="the outage's end")
        s.cluster.start_node(node)
    wait_until(lambda: requests.get(f"{s.base}/healthz", timeout=5).status_code == 200, 30, what="web back")


def assert_each_ended_once(s: Site, ids: list[str]) -> None:
    for job_id in ids:
        wait_until(
            lambda job_id=job_id: status(s.base, job_id)["state"] == "SUCCESS", 60, what=f"{job_id} SUCCESS"
        )
    logs = "".join(path.read_text(errors="replace") for _, path in s.workers.values())
    for job_id in ids:
        taken = [line for line in logs.splitlines() if TAKEN.search(line) and "Job OK" not in line]
        assert sum(job_id in line for line in taken) == 1, f"{job_id} taken more than once"
        assert len(re.findall(rf"job {job_id} ended: .* SUCCESS", logs)) == 1, f"{job_id} ended twice"
        assert len(Job.fetch(job_id, connection=s.client).results()) == 1
    for queue in s.queues.values():
        assert Queue(queue, connection=s.client).count == 0
        assert StartedJobRegistry(queue, connection=s.client).get_job_ids() == []
    assert all(process.poll() is None for process, _ in s.workers.values()), "a worker exited"


def ride_out(s: Site, down_s: float, sentinel: bool = False) -> None:
    """One outage, with a worker running a job through it, one whose job ends in it, one idle."""
    running = start(s, "running", STEPS["running"])
    ending = start(s, "ending", STEPS["ending"])
    stopped = start(s, "stopped", 600)
    for job_id in (running, ending, stopped):
        wait_until(lambda job_id=job_id: status(s.base, job_id)["state"] == "PROGRESS", 10)
    events: list[dict] = []
    stream = threading.Thread(target=follow, args=(f"{s.base}/status/{running}/events", events), daemon=True)
    stream.start()
    wait_until(lambda: events, 10, what="the stream's first event")
    assert s.http.post(f"{s.base}/status/{stopped}/cancel", timeout=5).status_code == 202
    redis_down(s, down_s, sentinel, running)
    after = start(s, "idle", 2)  # the idle worker takes a job once Redis is back
    assert_each_ended_once(s, [running, ending, after])
    stream.join(timeout=30)
    assert events[-1]["state"] == "SUCCESS", events[-3:]
    final = wait_until(lambda: (payload := status(s.base, stopped))["state"] == "FAILURE" and payload, 30)
    assert final["status"] == "stopped", final
    logs = "".join(path.read_text(errors="replace") for _, path in s.workers.values())
    assert "Redis unreachable" in logs and "Redis answers again" in logs


def test_a_3_s_and_a_20_s_restart_of_a_persisting_redis_fail_no_job(tmp_path, logs_dir):
    with site(tmp_path, logs_dir, sentinel=False) as s:
        ride_out(s, 3)
        ride_out(s, 20)


def test_a_sentinel_failover_fails_no_job(tmp_path, logs_dir):
    with site(tmp_path, logs_dir, sentinel=True) as s:
        ride_out(s, 0, sentinel=True)


def test_a_job_whose_worker_dies_during_an_outage_or_gives_up_past_the_grace_is_reported_lost(
    tmp_path, logs_dir
):
    roles = ("dies", "gives-up")
    with site(tmp_path, logs_dir, False, roles, {"gives-up": {"REDIS_OUTAGE_GRACE_S": "2"}}) as s:
        ids = {role: start(s, role, 600) for role in roles}
        for job_id in ids.values():
            wait_until(lambda job_id=job_id: status(s.base, job_id)["state"] == "PROGRESS", 10)
        port = s.cluster.primary_port()
        s.cluster.kill(port)
        worker, _ = s.workers.pop("dies")
        horses = group_leaders_under(worker.pid)  # a work horse leads a process group of its own
        kill_group(worker)
        for horse in horses:
            os.kill(horse, signal.SIGKILL)
        worker.wait(timeout=10)
        gives_up, log = s.workers.pop("gives-up")
        assert gives_up.wait(timeout=30) != 0  # past its grace, as RQ's worker does
        assert "past REDIS_OUTAGE_GRACE_S=2: giving up" in log.read_text()
        s.cluster.start_node(s.cluster.node(port))
        for job_id in ids.values():
            final = wait_until(
                lambda job_id=job_id: (payload := status(s.base, job_id))["state"] == "FAILURE" and payload,
                45,
                what=f"{job_id} lost",
            )
            assert final["status"].startswith("worker lost"), final
