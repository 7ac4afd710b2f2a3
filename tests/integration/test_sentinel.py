"""Redis Sentinel for real: a primary, a replica and three sentinels; the primary SIGKILLed under load.

One cluster, one web process and one worker for the module; the tests run in file order (the
failover comes last, since it leaves the primary dead and the new one without a replica).
"""

import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue, Worker
from rq.registry import StartedJobRegistry

from jobs.connection import SentinelConnection, connect, target_from
from support.local_redis import LOCAL_REDIS_URL
from support.sentinel import SentinelCluster
from support.servers import BIN, ROOT, free_port, spawn, start_web, stop_process, worker_args
from support.sse import EventParser
from support.wait import wait_until

QUEUES = ("high", "default", "low")
REPLICA_WAIT_MS = 300
DASHBOARD = ("ops", "ops-password")


@dataclass
class HA:
    """The cluster, the app's base URL and a client that follows the primary."""

    cluster: SentinelCluster
    base: str
    client: Redis
    env: dict[str, str]
    worker: subprocess.Popen


def start_sentinel_worker(
    env: dict[str, str], logs_dir, queues: tuple[str, ...] = QUEUES
) -> tuple[subprocess.Popen, str]:
    """The Procfile's worker command (`-c jobs.worker.settings`) on the cluster, and its name."""
    name = f"ha-{uuid.uuid4().hex[:8]}"
    args = worker_args("--path", str(ROOT), "--name", name, queues=queues)
    args[0] = str(BIN / args[0])
    return spawn(args, logs_dir / f"worker-{name}.log", env), name


@pytest.fixture(scope="module")
def ha(tmp_path_factory, logs_dir) -> Iterator[HA]:
    cluster = SentinelCluster(tmp_path_factory.mktemp("sentinel"))
    cluster.start()
    env = {**cluster.env(), "REDIS_URL": "", "REDIS_REPLICA_WAIT_MS": str(REPLICA_WAIT_MS)}
    client = connect(target_from(env), timeout_s=2)
    dashboard = {"RQ_DASHBOARD_USERNAME": DASHBOARD[0], "RQ_DASHBOARD_PASSWORD": DASHBOARD[1]}
    web, base = start_web("", logs_dir, {**env, **dashboard, "SSE_HEARTBEAT_S": "1"})
    worker, name = start_sentinel_worker(env, logs_dir)
    try:
        wait_until(lambda: name in [w.name for w in Worker.all(connection=client)], timeout_s=20)
        yield HA(cluster, base, client, env, worker)
    finally:
        stop_process(worker)
        stop_process(web)
        cluster.stop()


def test_a_dropped_sentinel_connection_redials_the_primary_the_sentinels_name_now():
    """redis-py 8 reconnects a dropped connection to its old address; ours asks the sentinels again."""
    live = Redis.from_url(LOCAL_REDIS_URL).connection_pool.connection_kwargs

    class Sentinels:  # what a connection asks of redis-py's pool proxy: the primary named now
        is_master, check_connection = True, False

        def get_master_address(self):
            return live["host"], live["port"]

    dead = free_port()
    connection = SentinelConnection(
        connection_pool=Sentinels(), host="127.0.0.1", port=dead, retry=Retry(NoBackoff(), 0)
    )
    connection.send_command("PING")
    assert connection.read_response() in (b"PONG", "PONG")
    assert (connection.host, connection.port) == (live["host"], live["port"])
    connection.disconnect()


def start(base: str, steps: int, step_seconds: float, **headers: str) -> requests.Response:
    return requests.post(
        f"{base}/longtask", json={"steps": steps, "step_seconds": step_seconds}, headers=headers, timeout=10
    )


def state_of(base: str, job_id: str) -> str:
    return requests.get(f"{base}/status/{job_id}", timeout=5).json()["state"]


def test_the_dashboard_and_health_read_the_sentinel_primary(ha):
    workers = requests.get(f"{ha.base}/rq/0/data/workers.json", auth=DASHBOARD, timeout=5).json()["workers"]
    assert len(workers) == 1
    assert requests.get(f"{ha.base}/healthz", timeout=5).json()["workers"] == {name: 1 for name in QUEUES}


def test_a_start_waits_for_the_replica_and_says_503_when_it_does_not_confirm(ha):
    replica = next(node for node in ha.cluster.nodes if node.role == "replica")
    key = {"Idempotency-Key": f"replica-{uuid.uuid4().hex}"}
    os.kill(replica.process.pid, signal.SIGSTOP)
    try:
        refused = start(ha.base, 1, 0, **key)
    finally:
        os.kill(replica.process.pid, signal.SIGCONT)
    assert refused.status_code == 503, refused.text
    assert "no replica confirmed it" in refused.json()["error"]["message"]
    assert refused.headers["Retry-After"]

    accepted = start(ha.base, 1, 0, **key)
    assert accepted.status_code == 202
    assert accepted.json()["id"] in refused.json()["error"]["message"]
    with Redis("127.0.0.1", replica.port) as on_replica:
        assert on_replica.exists(f"rq:job:{accepted.json()['id']}")


def test_killing_the_primary_under_load_loses_nothing_and_the_web_recovers(ha):
    running = start(ha.base, 60, 0.1).json()
    wait_until(lambda: state_of(ha.base, running["id"]) == "PROGRESS")
    waiting = [start(ha.base, 2, 0.05) for _ in range(5)]
    assert [response.status_code for response in waiting] == [202] * 5
    events: list[dict] = []
    stream = threading.Thread(target=follow, args=(ha.base + running["events_url"], events))
    stream.start()
    wait_until(lambda: events)

    old = ha.cluster.primary_port()
    ha.cluster.kill(old)
    status_url = f"{ha.base}/status/{running['id']}"
    # A Response is falsy when it is an error: wrap it.
    (outage,) = wait_until(lambda: (r := requests.get(status_url, timeout=5)).status_code == 503 and (r,))
    assert outage.json()["error"]["code"] == 503 and outage.headers["Retry-After"]
    ha.cluster.wait_for_new_primary(old)
    wait_until(lambda: requests.get(f"{ha.base}/healthz", timeout=5).status_code == 200, timeout_s=30)

    after = start(ha.base, 1, 0).json()
    for job_id in [running["id"], after["id"]] + [response.json()["id"] for response in waiting]:
        wait_until(lambda job_id=job_id: state_of(ha.base, job_id) == "SUCCESS", timeout_s=60)
    stream.join(timeout=30)
    assert events and events[-1]["state"] == "SUCCESS", events[-3:]
    assert all(Queue(name, connection=ha.client).count == 0 for name in QUEUES)
    assert all(not StartedJobRegistry(name, connection=ha.client).get_job_ids() for name in QUEUES)


def follow(url: str, events: list[dict]) -> None:
    """Append each payload of one stream to `events` as it comes (log lines skipped), until the end."""
    parser = EventParser()
    with requests.get(url, stream=True, timeout=30) as response:
        for chunk in response.iter_content(chunk_size=None):
            for event in parser.feed(chunk):
                if event.event is None:
                    events.append(event.json())
                    if events[-1]["state"] in ("SUCCESS", "FAILURE"):
                        return


def test_sentinels_unreachable_at_start_stop_the_web_with_a_sentence(logs_dir):
    nobody = {"REDIS_URL": "", "REDIS_SENTINELS": "127.0.0.1:1", "REDIS_SENTINEL_MASTER": "jobs"}
    log = logs_dir / f"web-no-sentinel-{uuid.uuid4().hex[:6]}.log"
    args = [str(BIN / "gunicorn"), "--no-control-socket", "--bind", "127.0.0.1:0", "web:create_app()"]
    process = spawn(args, log, {**nobody, "SECRET_KEY": "s"})
    assert process.wait(timeout=30) != 0
    assert "no sentinel in REDIS_SENTINELS answered" in log.read_text()


def test_an_idle_worker_on_sentinel_stops_at_once_on_sigterm(ha):
    # Its blocking dequeue is cut by the signal: redis-py's own Sentinel connection kept the
    # pending reply and the worker's next command waited minutes for it (jobs/connection.py).
    ha.worker.send_signal(signal.SIGTERM)
    assert ha.worker.wait(timeout=10) == 0
