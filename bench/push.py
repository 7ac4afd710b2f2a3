"""Push latency and streams at scale: N event streams on ONE web process, every update timed.

    .venv/bin/python -m bench.push --redis-url URL [--streams 5000] [--updates 21] [--interval-s 0.5] [--poll]

Starts the Procfile's web line with WEB_CONCURRENCY=1, its open-file limit raised by the bench
to fit the streams (N + 1,024), and starts one demo job while no worker runs, so it waits. Then
it opens N streams on that job from this process (`bench.sse_clients`, its own limit raised
too), and only then starts one worker (the Procfile's line, saving every update). An update's
delay runs from the worker's save (the payload's `updated_at`) to the read that completed its
frame at a client; a stream is complete when it got every saved update and the end. `--poll`
adds one client polling `/status/<id>` every 2 s as the tutorial's page does. Prints one JSON
document; `python -m bench` runs this module as a subprocess, so its event loop has the process
to itself.
"""

import argparse
import asyncio
import json
import resource
import statistics
import sys
import threading
import time
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from redis import Redis

from bench import procs
from bench.sse_clients import frames, open_streams, raise_open_files, wait_closed
from jobs.keys import channel_for
from support.servers import stop_process

POLL_S = 2.0  # the tutorial's page polls every 2 seconds
SPARE_FILES = 1024  # open files beyond one per stream: Redis, logs, the listening socket


def saved_at(payload: dict[str, Any]) -> float:
    """The wall-clock second the worker saved this update (its `updated_at`)."""
    return datetime.fromisoformat(payload["updated_at"].replace("Z", "+00:00")).timestamp()


def spread(delays: list[float]) -> dict[str, float | None]:
    """p50 / p95 / p99 / max of delays in ms (nearest rank)."""
    if not delays:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(delays)

    def rank(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))], 1)

    return {"p50_ms": rank(0.5), "p95_ms": rank(0.95), "p99_ms": rank(0.99), "max_ms": round(ordered[-1], 1)}


class Published:
    """Every payload published on the job's channel."""

    def __init__(self, redis_url: str, job_id: str) -> None:
        self.payloads: list[dict] = []
        self.pubsub = Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(**{channel_for(job_id): self._keep})
        self.thread = self.pubsub.run_in_thread(sleep_time=0.2, daemon=True)

    def _keep(self, message: dict) -> None:
        self.payloads.append(json.loads(message["data"]))

    def progress_saves(self) -> set[str]:
        return {p["updated_at"] for p in self.payloads if p.get("state") == "PROGRESS"}

    def close(self) -> None:
        self.thread.stop()
        self.thread.join(timeout=5)


def poll(url: str, seen: list[tuple[float, dict]], stop: threading.Event) -> None:
    """Poll like the tutorial: GET every 2 s, keep what each answer said and when."""
    with requests.Session() as session:
        while not stop.is_set():
            payload = session.get(url, timeout=10).json()
            seen.append((time.time(), payload))
            if payload.get("state") in ("SUCCESS", "FAILURE"):
                return
            stop.wait(POLL_S)


def poll_catch_up(saves: list[float], polls: list[tuple[float, dict]]) -> dict:
    """For each saved update, how long until a poll showed it or a newer one; and how many it showed."""
    delays = []
    for moment in saves:
        shown = [at for at, p in polls if p.get("updated_at") and saved_at(p) >= moment]
        if shown:
            delays.append((min(shown) - moment) * 1000)
    distinct = {p["updated_at"] for _, p in polls if p.get("state") == "PROGRESS"}
    return {"seen": len(distinct), **spread(delays)}


def stream_figures(clients, saves: set[str]) -> dict:
    """Per-update delays across every stream, and how many streams got every update and the end."""
    delays, seen, complete = [], [], 0
    for client in clients:
        first: dict[str, float] = {}
        ended = False
        for arrived, payload in frames(client.reads):
            if payload.get("state") == "PROGRESS" and payload["updated_at"] not in first:
                first[payload["updated_at"]] = (arrived - saved_at(payload)) * 1000
            ended = ended or payload.get("state") in ("SUCCESS", "FAILURE")
        delays.extend(first.values())
        seen.append(len(saves & first.keys()))
        complete += ended and saves <= first.keys()
    return {
        "complete_streams": complete,
        "seen_min": min(seen, default=0),
        "seen_median": statistics.median(seen) if seen else 0,
        **spread(delays),
    }


async def scenario(base: str, redis_url: str, web_pid: int, redis_port: int, args) -> dict:
    """Open the streams on a waiting job, start the worker, time every update at every stream."""
    job = requests.post(
        f"{base}/longtask", json={"steps": args.updates, "step_seconds": args.interval_s}, timeout=10
    ).json()
    published = Published(redis_url, job["id"])
    found: dict[str, Any] = {"rss_before_mib": procs.rss_mib(web_pid)}
    events = urlsplit(urljoin(base + "/", job["events_url"]))  # the Procfile's streams listener
    opened = await open_streams(events.hostname, events.port, events.path, args.streams)
    found.update(
        opened=len(opened.clients),
        failed=sum(opened.failures.values()),
        failures=opened.failures,
        open_s=opened.seconds,
        rss_open_mib=procs.rss_mib(web_pid),
        redis_connections_open=procs.redis_connections(web_pid, redis_port),
    )
    polled: list[tuple[float, dict]] = []
    stop = threading.Event()
    poller = threading.Thread(target=poll, args=(base + job["status_url"], polled, stop), daemon=True)
    if args.poll:
        poller.start()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    worker = procs.start_rq_workers(redis_url, 1, env={"PROGRESS_MAX_SAVES_PER_S": "1000"})[0]
    try:
        deadline_s = args.updates * args.interval_s + 60
        found["still_open_at_deadline"] = await wait_closed(opened.clients, deadline_s)
    finally:
        stop.set()
        worker.terminate()
        stop_process(worker)
        published.close()
    after = resource.getrusage(resource.RUSAGE_SELF)
    found["client_cpu_s"] = round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 2)
    saves = published.progress_saves()
    found["updates_saved"] = len(saves)
    found.update(stream_figures(opened.clients, saves))
    if args.poll:
        poller.join(10)
        found["poll_2s"] = poll_catch_up(sorted(saved_at({"updated_at": s}) for s in saves), polled)
    return found


def run(coroutine):
    """Run on uvloop (less client time per read) when it is installed, else on plain asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def measure(args) -> dict:
    """Start the one-process web, run the scenario, stop everything; the figures as a dict."""
    wanted = args.streams + SPARE_FILES
    client_limit = raise_open_files(wanted)
    connection = Redis.from_url(args.redis_url)
    redis_port = connection.connection_pool.connection_kwargs.get("port", 6379)
    web, base = procs.start_our_web(args.redis_url, processes=1, open_files=wanted)
    found: dict[str, Any] = {"streams": args.streams, "updates": args.updates, "interval_s": args.interval_s}
    try:
        found["web_open_files_limit"] = min(
            filter(None, (procs.open_files_limit(pid) for pid in procs.process_tree(web.pid))), default=None
        )
        found["client_open_files_limit"] = client_limit
        found.update(run(scenario(base, args.redis_url, web.pid, redis_port, args)))
        if web.poll() is not None:
            found["web_exit_code"] = web.returncode
        found["kib_per_stream"] = (
            round((found["rss_open_mib"] - found["rss_before_mib"]) * 1024 / found["opened"], 1)
            if found["opened"]
            else None
        )
    finally:
        stop_process(web)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True, help="an empty database the bench has claimed")
    parser.add_argument("--streams", type=int, default=5000, help="event streams on the one web process")
    parser.add_argument("--updates", type=int, default=21, help="progress updates the job saves")
    parser.add_argument("--interval-s", type=float, default=0.5, help="seconds between updates")
    parser.add_argument("--poll", action="store_true", help="add one client polling every 2 s")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
