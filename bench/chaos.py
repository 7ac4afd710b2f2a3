"""`make chaos`: start N jobs over the three queues while killing workers, work horses, web processes
and Redis (or, with --sentinel, the primary), then count what became of every job.

Everything runs as deployed: the Procfile's web and worker lines (several of each), a Valkey
with AOF (`appendfsync always`) or a Sentinel-managed primary with a replica and three sentinels.
A client starts the jobs over HTTP (`POST /api/jobs`, each with its own Idempotency-Key, retried
until it gets a 202) while faults are injected at random (fixed seed). Faults then stop, every
process is brought back, and the run waits for every job to end.

What became of each job is counted by `bench/chaos_report.py`. Lost and stuck must be 0; the
exit status says whether they were. Results go to `bench/chaos.json`, and the table to
docs/operations.md between the `chaos:results` markers.
"""

import argparse
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis as redis_py
import requests
import rq
from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from bench.chaos_report import classify, render, save, taken_counts, worker_pids
from jobs.connection import connect, target_from
from scripts.run import read_procfile
from support.proctree import group_leaders_under
from support.sentinel import SentinelCluster
from support.servers import free_port, kill_group, spawn
from support.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOG_DIR = ROOT / "bench" / "results" / "raw" / "chaos"
QUEUES = ("high", "default", "low")
TERMINAL = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
RESTART_DELAY_S = 1.0


@dataclass
class Proc:
    """One supervised process: a Procfile line with its environment."""

    name: str
    command: str
    env: dict[str, str]
    process: subprocess.Popen | None = None
    kills: int = 0

    def start(self) -> None:
        if self.process is not None:
            kill_group(self.process)  # what the dead process left in its group (a scheduler child)
        self.process = spawn(
            ["/bin/sh", "-c", f"exec {self.command}"], LOG_DIR / f"{self.name}.log", self.env
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Run:
    """The processes, the Redis they share, and the record of faults."""

    args: argparse.Namespace
    cluster: SentinelCluster
    env: dict[str, str]
    client: Redis
    webs: list[Proc] = field(default_factory=list)
    workers: list[Proc] = field(default_factory=list)
    faults: Counter = field(default_factory=Counter)
    # Each fault with its time, for `chaos_report.attribute` (see there).
    events: list[dict] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    faulting: threading.Event = field(default_factory=threading.Event)

    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{web.env['PORT']}" for web in self.webs]

    def supervise(self) -> None:
        """Restart any process that died, after a short delay (as `make run` and systemd do)."""
        dead_since: dict[str, float] = {}
        while not self.stopping.wait(0.2):
            for proc in self.webs + self.workers:
                if proc.alive():
                    dead_since.pop(proc.name, None)
                elif time.monotonic() - dead_since.setdefault(proc.name, time.monotonic()) >= RESTART_DELAY_S:
                    proc.start()
                    dead_since.pop(proc.name, None)

    def inject(self, rng: random.Random) -> None:
        """Kill something every couple of seconds until told to stop."""
        next_redis = time.monotonic() + self.args.redis_every_s
        while self.faulting.is_set() and not self.stopping.wait(rng.uniform(1.0, 3.0)):
            if time.monotonic() >= next_redis:
                self.fault_redis()
                next_redis = time.monotonic() + self.args.redis_every_s
                continue
            kind = rng.choices(["worker", "horse", "web"], weights=[4, 4, 2])[0]
            if kind == "web":
                self.kill(rng.choice(self.webs), "web process")
            elif kind == "worker":
                self.kill(rng.choice(self.workers), "worker")
            else:
                horses = [
                    (pid, proc.process.pid)
                    for proc in self.workers
                    if proc.alive()
                    for pid in group_leaders_under(proc.process.pid)
                ]
                if horses:
                    horse, worker = rng.choice(horses)
                    self.events.append({"kind": "horse", "at": time.time(), "worker_pid": worker})
                    _sigkill(horse)
                    self.faults["work horse SIGKILLed"] += 1

    def kill(self, proc: Proc, what: str) -> None:
        if proc.alive():
            kind = "worker" if proc in self.workers else "web"
            self.events.append({"kind": kind, "at": time.time(), "pid": proc.process.pid})
            _sigkill(proc.process.pid)
            proc.kills += 1
            self.faults[f"{what} SIGKILLed"] += 1

    def fault_redis(self) -> None:
        """Plain: SIGKILL Redis and start it again on its AOF. Sentinel: SIGKILL the primary."""
        port = self.cluster.primary_port()
        node = self.cluster.node(port)
        event = {"kind": "redis", "at": time.time()}
        self.events.append(event)
        self.cluster.kill(port)
        if self.args.sentinel:
            self.faults["primary SIGKILLed (failover)"] += 1
            self.cluster.wait_for_new_primary(port)
            event["until"] = time.time()
            time.sleep(3.0)  # the old primary stays away a while, then rejoins as a replica
        else:
            self.faults["Redis SIGKILLed and restarted (AOF)"] += 1
            time.sleep(1.0)
        self.cluster.start_node(node)
        if not self.args.sentinel:
            wait_until(lambda: _answers(self.client), 30, what="Redis back")
            event["until"] = time.time()


def _answers(client: Redis) -> bool:
    try:
        return bool(client.ping())
    except redis_py.RedisError:
        return False


def _sigkill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def submit(run: Run, count: int, duration_s: float, rng: random.Random) -> tuple[list[str], int]:
    """Start `count` jobs evenly over `duration_s`, each retried with its key until accepted.

    Returns:
        The accepted job ids, and how many starts were never accepted.
    """
    accepted, refused = [], 0
    token = os.urandom(4).hex()
    began = time.monotonic()
    for n in range(count):
        time.sleep(max(0.0, began + n * duration_s / count - time.monotonic()))
        body = {
            "name": "long_task",
            "args": {"steps": rng.randint(1, 5), "step_seconds": rng.choice([0.05, 0.1, 0.2])},
            "queue": QUEUES[n % len(QUEUES)],
        }
        headers = {"Idempotency-Key": f"chaos-{token}-{n}"}
        job_id = start_with_retries(run.urls(), body, headers, rng)
        if job_id is None:
            refused += 1
        else:
            accepted.append(job_id)
    return accepted, refused


def start_with_retries(urls: list[str], body: dict, headers: dict, rng: random.Random) -> str | None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            response = requests.post(f"{rng.choice(urls)}/api/jobs", json=body, headers=headers, timeout=10)
            if response.status_code == 202:
                return response.json()["id"]
        except requests.RequestException:
            pass
        time.sleep(0.3)
    return None


def settle(client: Redis, ids: list[str], timeout_s: float) -> float:
    """Wait until every job has ended or `timeout_s` passed; returns how long it took."""
    began = time.monotonic()
    pending = set(ids)
    while pending and time.monotonic() - began < timeout_s:
        try:
            pending = {job_id for job_id in pending if _status(client, job_id) not in TERMINAL | {None}}
        except redis_py.RedisError:
            pass
        time.sleep(1.0)
    return time.monotonic() - began


def _status(client: Redis, job_id: str):
    try:
        return Job.fetch(job_id, connection=client).get_status(refresh=False)
    except NoSuchJobError:
        return None


def start_processes(args: argparse.Namespace, env: dict[str, str]) -> tuple[list[Proc], list[Proc]]:
    procfile = {entry.name: entry.command for entry in read_procfile(ROOT / "Procfile")}
    webs = [
        Proc(f"web-{n}", procfile["web"], {**env, "PORT": str(free_port()), "WEB_CONCURRENCY": "1"})
        for n in range(args.webs)
    ]
    # One `rq worker` a Proc: a worker kill then kills a worker, and a horse kill a work horse (the
    # launcher in front of the line would put each worker in a group of its own).
    worker_env = {**env, "WORKER_CONCURRENCY": "1"}
    workers = [Proc(f"worker-{n}", procfile["worker"], worker_env) for n in range(args.workers)]
    for proc in webs + workers:
        proc.start()
    return webs, workers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs to start (default 1000)")
    parser.add_argument("--duration", type=float, default=180, help="seconds of starts and faults")
    parser.add_argument("--sentinel", action="store_true", help="a Sentinel-managed primary; kill it")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--webs", type=int, default=2)
    parser.add_argument("--redis-every-s", type=float, default=30, help="seconds between Redis faults")
    parser.add_argument("--settle", type=float, default=150, help="longest wait for every job to end")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-readme", action="store_true", help="leave docs/operations.md's table")
    args = parser.parse_args()

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for old in LOG_DIR.glob("*.log"):
        old.unlink()
    rng = random.Random(args.seed)
    workdir = LOG_DIR / "redis"
    shutil.rmtree(workdir, ignore_errors=True)
    cluster = SentinelCluster(
        workdir, replicas=1 if args.sentinel else 0, sentinels=3 if args.sentinel else 0
    )
    cluster.start()
    if args.sentinel:
        redis_env = {**cluster.env(), "REDIS_URL": ""}
    else:
        redis_env = {"REDIS_URL": f"redis://127.0.0.1:{cluster.primary_port()}/0"}
    env = {
        **redis_env,
        "SECRET_KEY": "chaos",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "LOST_JOB_CHECK_INTERVAL_S": "1",
        "QUEUE_MAX_JOBS": str(args.jobs + 1),
        # One client address starts every job: the per-address limit on anonymous starts is off.
        "START_RATE_LIMIT": "0",
    }
    client = connect(target_from(redis_env), timeout_s=5, ride_out_s=60)
    run = Run(args, cluster, env, client)
    run.webs, run.workers = start_processes(args, env)
    threads = [threading.Thread(target=run.supervise, daemon=True)]
    try:
        for url in run.urls():
            wait_until(lambda url=url: requests.get(f"{url}/healthz", timeout=2).ok, 60, what=url)
        threads[0].start()
        run.faulting.set()
        threads.append(threading.Thread(target=run.inject, args=(random.Random(args.seed + 1),), daemon=True))
        threads[1].start()
        began = time.monotonic()
        accepted, refused = submit(run, args.jobs, args.duration, rng)
        run.faulting.clear()
        threads[1].join()
        faults_s = time.monotonic() - began
        settle_s = settle(client, accepted, args.settle)
        counts = classify(client, accepted, taken_counts(LOG_DIR), run.events, worker_pids(LOG_DIR))
    finally:
        run.stopping.set()
        for proc in run.webs + run.workers:
            if proc.process is not None:
                kill_group(proc.process)
                proc.process.wait(timeout=10)
        cluster.stop()
    result = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {platform.platform()}",
        "versions": {
            "python": platform.python_version(),
            "rq": rq.__version__,
            "redis": redis_py.__version__,
        },
        "mode": "sentinel" if args.sentinel else "aof",
        "worker": run.workers[0].command,
        "settings": {k: v for k, v in vars(args).items() if k != "no_readme"},
        "faults": dict(run.faults),
        "refused": refused,
        "faults_s": round(faults_s, 1),
        "settle_s": round(settle_s, 1),
        **counts,
    }
    save(result, not args.no_readme)
    print(render(result))
    ok = result["lost"] == 0 and result["stuck"] == 0
    print("lost and stuck are 0" if ok else f"NOT MET: lost {result['lost']}, stuck {result['stuck']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
