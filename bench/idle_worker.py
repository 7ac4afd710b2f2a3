"""An idle worker: its Redis commands per second and how soon it starts a job, per worker class.

`python -m bench.idle_worker`.
For each class (the Procfile's, then RQ's stock `rq.Worker` on the same line), alternating
rounds: one worker on its own embedded Redis, idle; its Redis commands per second over
`--idle-s` (INFO commandstats, less this script's own reads); then `--jobs` no-op jobs enqueued
one at a time on an idle worker, the start latency being the job's `started_at` (set in the
work horse) minus its `enqueued_at`. Prints one line per class.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from redis import Redis

from jobs.worker.dequeue import ReliableQueue
from support.servers import start_embedded_redis, start_worker, stop_process
from support.wait import wait_until

CLASSES = {"ours (Procfile)": (), "stock rq.Worker": ("--worker-class", "rq.Worker")}


def calls(client: Redis) -> int:
    """Commands the server has run so far."""
    return sum(stat["calls"] for stat in client.info("commandstats").values())


def one_round(extra: tuple[str, ...], idle_s: float, jobs: int, logs: Path) -> tuple[float, list[float]]:
    server = start_embedded_redis()
    url = server.connection_url + "/0"
    client = Redis.from_url(url)
    worker, _ = start_worker(url, logs, *extra, scheduler=False)
    try:
        time.sleep(2.0)  # let start-up (registration, first maintenance) pass; this is a measurement
        before = calls(client)
        time.sleep(idle_s)
        rate = (calls(client) - before - 1) / idle_s  # less the second INFO's own call
        queue = ReliableQueue("default", connection=client)
        latencies = []
        for _ in range(jobs):
            time.sleep(0.2)  # idle again before each job: the worker waits, as it does between starts
            job = queue.enqueue("tests.fixture_jobs.answer")
            wait_until(lambda job=job: job.get_status(refresh=True) == "finished", 10, interval_s=0.005)
            job.refresh()
            latencies.append((job.started_at - job.enqueued_at).total_seconds() * 1000)
        return rate, latencies
    finally:
        stop_process(worker)
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--jobs", type=int, default=30)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="idle-worker-"))
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in CLASSES}
    for _ in range(args.rounds):
        for name, extra in CLASSES.items():
            rate, latencies = one_round(extra, args.idle_s, args.jobs, logs)
            results[name][0].append(rate)
            results[name][1].extend(latencies)
    for name, (rates, latencies) in results.items():
        ordered = sorted(latencies)
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        print(
            f"{name}: idle {statistics.mean(rates):.2f} commands/s; start latency "
            f"p50 {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms ({len(ordered)} jobs)"
        )


if __name__ == "__main__":
    main()
