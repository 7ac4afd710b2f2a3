"""Profile the hot paths in-process against a real (embedded) Redis, with pyinstrument.

    .venv/bin/python -m bench.profile_hot_paths [--calls 2000] [--html DIR]

Paths: the status read (`jobs.snapshot.snapshot` for a finished job and a running one), the
start (`POST /longtask` through the Flask test client, so routing and JSON are included), and
the progress save + publish (`jobs.progress._save`). Prints microseconds per call, Redis
round trips per call, and pyinstrument's call tree for each.
"""

import argparse
import time
from pathlib import Path

from pyinstrument import Profiler
from redis import Redis
from rq import SimpleWorker
from rq.job import Job, JobStatus

from bench.procs import RedisServer
from jobs import progress
from jobs.registry import start_job
from jobs.snapshot import snapshot
from web import create_app


class CountingRedis(Redis):
    """A Redis client that counts round trips (a pipeline is one)."""

    round_trips = 0

    def execute_command(self, *args, **options):
        CountingRedis.round_trips += 1
        return super().execute_command(*args, **options)

    def pipeline(self, *args, **kwargs):
        pipe = super().pipeline(*args, **kwargs)
        original = pipe.execute

        def execute(*a, **k):
            CountingRedis.round_trips += 1
            return original(*a, **k)

        pipe.execute = execute
        return pipe


def measure(name: str, call, calls: int, html: Path | None) -> None:
    for _ in range(50):
        call()
    CountingRedis.round_trips = 0
    profiler = Profiler(interval=0.0002)
    started = time.perf_counter()
    with profiler:
        for _ in range(calls):
            call()
    elapsed = time.perf_counter() - started
    print(
        f"\n=== {name}: {elapsed / calls * 1e6:.0f} us/call (profiled), "
        f"{CountingRedis.round_trips / calls:.1f} Redis round trips/call"
    )
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    if html:
        html.mkdir(parents=True, exist_ok=True)
        (html / f"{name.split()[0]}.html").write_text(profiler.output_html())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--html", type=Path, default=None)
    args = parser.parse_args()
    server = RedisServer()
    try:
        connection = CountingRedis.from_url(server.url)
        finished = start_job(connection, "long_task", {"steps": 1, "step_seconds": 0})
        SimpleWorker(["default"], connection=connection).work(burst=True)
        running = start_job(connection, "long_task", {"steps": 10, "step_seconds": 0})
        running.set_status(JobStatus.STARTED)
        job = Job.fetch(running.id, connection=connection)

        measure(
            "status-finished snapshot()", lambda: snapshot(finished.id, connection), args.calls, args.html
        )
        measure("status-running snapshot()", lambda: snapshot(running.id, connection), args.calls, args.html)
        app = create_app({"SECRET_KEY": "profile", "REDIS_CONNECTION": connection})
        client = app.test_client()
        measure(
            "status-http GET /status", lambda: client.get(f"/status/{finished.id}"), args.calls, args.html
        )
        measure("start POST /longtask", lambda: client.post("/longtask"), args.calls // 2, args.html)
        measure(
            "progress _save()",
            lambda: progress._save(job, {"current": 3, "total": 10, "status": "step 3"}),
            args.calls,
            args.html,
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
