"""Each figure of the benchmark, measured once against processes that are already running.

Times that cross processes (a save in the worker, a sighting in the client) are wall-clock
`time.time()` on the same machine; everything else uses `time.perf_counter`. A save is timed
when its PUBLISH reaches a subscriber in this process: both stacks publish every saved update
(ours on `rq-progress:events:<id>`, Celery's Redis backend on `celery-task-meta-<id>`).
"""

import json
import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime
from urllib.parse import urljoin

import requests
from redis import Redis
from rq import Queue

from bench.procs import DASHBOARD_AUTH
from bench.sse_clients import EventStream
from jobs.keys import channel_for
from support.wait import wait_until

OURS, CELERY, PLAIN = "rq-progress", "tutorial (Celery)", "plain RQ"
POLL_S = 2.0  # the tutorial's page polls every 2 seconds


class Saves:
    """Records every progress payload either stack publishes, with the time it arrived."""

    def __init__(self, redis_url: str) -> None:
        self.by_job: dict[str, list[tuple[float, dict]]] = defaultdict(list)
        self.changed = threading.Condition()
        self.pubsub = Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe(**{channel_for("*"): self._on_message, "celery-task-meta-*": self._on_message})
        self.thread = self.pubsub.run_in_thread(sleep_time=0.5, daemon=True)

    def _on_message(self, message: dict) -> None:
        received = time.time()
        channel = message["channel"].decode()
        job_id = (
            channel.rsplit(":", 1)[-1] if channel.startswith("rq-") else channel[len("celery-task-meta-") :]
        )
        data = json.loads(message["data"])
        if "state" not in data:  # Celery's meta: {"status": ..., "result": {...}}
            result = data.get("result") if isinstance(data.get("result"), dict) else {}
            data = {"state": data.get("status"), "current": result.get("current")}
        elif data.get("state") == "PROGRESS" and data.get("updated_at"):
            # Our payload says when the job saved it. This thread can get the PUBLISH later than
            # the event-stream reader gets the event (both share the GIL), which would pair an
            # update with the next sighting; the save's own timestamp is the true start.
            saved = datetime.fromisoformat(data["updated_at"]).timestamp()
            received = min(received, saved)
        with self.changed:
            self.by_job[job_id].append((received, data))
            self.changed.notify_all()

    def wait(self, job_id: str, predicate, timeout_s: float = 30.0) -> tuple[float, dict]:
        """The first recorded payload of a job that satisfies `predicate`, waiting for it."""
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while True:
                for received, data in self.by_job.get(job_id, []):
                    if predicate(data):
                        return received, data
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"job {job_id}: no matching save within {timeout_s} s")
                self.changed.wait(left)

    def progress(self, job_id: str) -> list[tuple[float, int]]:
        """(time, current) of every PROGRESS save of a job, in order."""
        return [(t, d["current"]) for t, d in self.by_job.get(job_id, []) if d.get("state") == "PROGRESS"]

    def close(self) -> None:
        self.thread.stop()
        self.thread.join(timeout=5)
        self.pubsub.close()


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of `values` (share in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


def is_terminal(data: dict) -> bool:
    return data.get("state") in ("SUCCESS", "FAILURE")


def start(base: str, body: dict | None) -> tuple[str, str]:
    """POST /longtask; returns (job id, absolute status URL)."""
    answer = requests.post(f"{base}/longtask", json=body, timeout=10)
    answer.raise_for_status()
    status_url = urljoin(base + "/", answer.headers["Location"])
    return status_url.rstrip("/").rsplit("/", 1)[-1], status_url


def has_event_stream(base: str, saves: Saves) -> bool:
    """Whether GET /status/<id>/events serves an event stream (the SSE route may not be merged yet)."""
    job_id, status_url = start(base, {"steps": 1, "step_seconds": 0})
    saves.wait(job_id, is_terminal)
    try:
        stream = EventStream(f"{status_url}/events")
    except OSError:
        return False
    stream.close()
    return stream.status == 200 and stream.content_type.startswith("text/event-stream")


def progress_latency(
    base: str, saves: Saves, use_stream: bool, steps: int = 20, step_s: float = 0.25
) -> dict:
    """Save-to-sighting latency of every update of one job, as a client sees them."""
    job_id, status_url = start(base, {"steps": steps, "step_seconds": step_s})
    sightings: list[tuple[float, dict]] = []
    if use_stream:
        stream = EventStream(f"{status_url}/events", on_event=lambda data, at: sightings.append((at, data)))
        saves.wait(job_id, is_terminal, timeout_s=steps * step_s + 30)
        wait_until(lambda: any(is_terminal(d) for _, d in sightings), 10, what="the terminal event")
        stream.close()
    else:
        while True:
            data = requests.get(status_url, timeout=10).json()
            sightings.append((time.time(), data))
            if is_terminal(data):
                break
            time.sleep(POLL_S)
    latencies, unseen = [], 0
    shown = {d.get("current") for _, d in sightings if d.get("state") == "PROGRESS"}
    for saved_at, current in saves.progress(job_id):
        unseen += current not in shown
        for seen_at, data in sightings:
            newer = is_terminal(data) or (
                data.get("state") == "PROGRESS" and data.get("current", -1) >= current
            )
            if newer and seen_at >= saved_at:
                latencies.append(seen_at - saved_at)
                break
    updates = len(saves.progress(job_id))
    return {
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "unseen_share": round(unseen / updates, 3) if updates else None,
        "updates": updates,
    }


def start_latency(start_one, saves: Saves, samples: int = 15, ended=None) -> dict:
    """From the start request to the job's first progress save, on an idle worker.

    Args:
        ended: given a job id, whether the job has ended; by default, its final payload was seen
            (a job without our callbacks publishes none).
    """
    latencies = []
    for _ in range(samples):
        sent = time.time()
        job_id = start_one()
        running_at, _ = saves.wait(job_id, lambda d: d.get("state") == "PROGRESS")
        latencies.append(running_at - sent)
        if ended is None:
            saves.wait(job_id, is_terminal)
        else:
            wait_until(lambda: ended(job_id), 30, what=f"job {job_id} ended")
        time.sleep(0.05)  # let the worker finish its bookkeeping and go idle
    return {
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
    }


def web_starter(base: str):
    return lambda: start(base, {"steps": 1, "step_seconds": 0})[0]


def rq_starter(redis_url: str):
    queue = Queue("default", connection=Redis.from_url(redis_url))
    return lambda: queue.enqueue("jobs.demo.long_task", steps=1, step_seconds=0).id


def rq_ended(connection: Redis):
    """Given a job id, whether that RQ job has ended, read from its hash in one command."""
    return lambda job_id: connection.hget(f"rq:job:{job_id}", "status") in (b"finished", b"failed")


def finished_job(base: str, saves: Saves) -> str:
    """The status URL of a job that has finished (SUCCESS carries the result, the fullest read)."""
    job_id, status_url = start(base, {"steps": 1, "step_seconds": 0})
    saves.wait(job_id, is_terminal)
    wait_until(lambda: requests.get(status_url, timeout=5).json()["state"] == "SUCCESS", 10, what="SUCCESS")
    return status_url


def commands(server, action) -> tuple[int, float]:
    """Redis commands run during `action()`, and how long it took."""
    server.reset_stats()
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    return server.command_count(), elapsed


def idle_rate(server, seconds: float = 1.0) -> float:
    """Commands per second while nothing is asked of the stack (worker heartbeats, polls)."""
    count, elapsed = commands(server, lambda: time.sleep(seconds))
    return count / elapsed


def per_job_commands(server, run_job, jobs: int, idle_per_s: float) -> float:
    """Redis commands per job, net of the idle rate."""

    def action():
        for _ in range(jobs):
            run_job()
        time.sleep(0.3)  # the worker's last bookkeeping after the terminal save

    count, elapsed = commands(server, action)
    return round((count - idle_per_s * elapsed) / jobs, 1)


def run_job_via_web(base: str, saves: Saves, steps: int, step_s: float):
    def run():
        job_id, _ = start(base, {"steps": steps, "step_seconds": step_s})
        saves.wait(job_id, is_terminal)
        time.sleep(0.05)

    return run


def cost_of_jobs(server, base: str, saves: Saves) -> dict:
    """Redis commands per job lifecycle (a 1-step job) and per extra progress update.

    Our worker runs here with PROGRESS_MAX_SAVES_PER_S=0 (no coalescing), so all 101 updates
    of the long job are saved and the difference over the 1-step job is 100 saves.
    """
    idle = idle_rate(server)
    one = per_job_commands(server, run_job_via_web(base, saves, 1, 0), 5, idle)
    many = per_job_commands(server, run_job_via_web(base, saves, 101, 0), 2, idle)
    return {
        "per_1_step_job": one,
        "per_progress_update": round((many - one) / 100, 2),
        "idle_per_s": round(idle, 1),
    }


def cost_of_plain_job(server, redis_url: str) -> dict:
    """Redis commands per plain RQ job (a no-op, no web, no progress)."""
    queue = Queue("default", connection=Redis.from_url(redis_url))
    idle = idle_rate(server)

    def run():
        queue.enqueue("bench.jobs.noop")
        time.sleep(0.15)

    return {"per_1_step_job": per_job_commands(server, run, 5, idle), "idle_per_s": round(idle, 1)}


def cost_of_requests(server, url: str, method: str, count: int = 20) -> float:
    """Redis commands per HTTP request (measured with no worker running)."""
    session = requests.Session()
    total, _ = commands(server, lambda: [session.request(method, url, timeout=10) for _ in range(count)])
    return round(total / count, 1)


def celery_ready(redis_url: str, timeout_s: float = 60) -> None:
    """Wait until a Celery worker runs a task."""
    from celery import Celery

    client = Celery("app", broker=redis_url, backend=redis_url)
    client.send_task("app.noop").get(timeout=timeout_s)


def seed_finished_jobs(connection: Redis, template_id: str, count: int, batch: int = 2000) -> None:
    """Add `count` copies of a finished job (hash, result stream, finished-registry entry)."""
    fields = connection.hgetall(f"rq:job:{template_id}")
    results = connection.xrange(f"rq:results:{template_id}")
    expires = time.time() + 3600
    for offset in range(0, count, batch):
        pipe = connection.pipeline(transaction=False)
        for _ in range(min(batch, count - offset)):
            job_id = str(uuid.uuid4())
            pipe.hset(f"rq:job:{job_id}", mapping=fields)
            for _, entry in results:
                pipe.xadd(f"rq:results:{job_id}", entry)
            pipe.zadd("rq:finished:default", {job_id: expires})
        pipe.execute()


def status_read_ms(status_url: str, samples: int = 100) -> float:
    """Median time of one GET /status/<id>, one request at a time."""
    session = requests.Session()
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        session.get(status_url, timeout=10).raise_for_status()
        times.append(time.perf_counter() - started)
    return round(percentile(times, 0.5) * 1000, 2)


DASHBOARD_PAGES = (
    "/rq/0/view/jobs/default/finished/8/asc/1",
    "/rq/0/data/queues.json",
    "/rq/0/data/jobs/default/finished/8/asc/1.json",
)


def dashboard_session(base: str) -> requests.Session:
    """A session that looks like the dashboard's own page: basic auth and same-origin headers."""
    session = requests.Session()
    session.auth = DASHBOARD_AUTH
    session.headers.update({"Origin": base, "Referer": f"{base}/rq/", "Sec-Fetch-Site": "same-origin"})
    return session


def has_dashboard(base: str) -> bool:
    """Whether rq-dashboard is mounted at /rq (behind basic auth)."""
    return dashboard_session(base).get(f"{base}/rq/0/data/queues.json", timeout=10).status_code == 200


def dashboard_page_ms(base: str, samples: int = 5) -> float:
    """Median time to load the finished-jobs page: its HTML plus the two JSON documents it fetches."""
    session = dashboard_session(base)
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        for page in DASHBOARD_PAGES:
            session.get(base + page, timeout=30).raise_for_status()
        times.append(time.perf_counter() - started)
    return round(percentile(times, 0.5) * 1000, 1)
