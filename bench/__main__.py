"""`make bench`: run every figure against real processes and write bench/results.{json,md,png}.

Each run measures our stack and the tutorial's (Flask + Celery) one after the other, in
alternating order, then plain RQ, then short-job throughput; figures are medians over runs and
comparisons are medians of per-run ratios, so a noisy neighbour hits both sides alike.
Options: `--runs N` (default 3), `--quick` (one short run, to check the harness).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path

from redis import Redis
from rq.command import send_stop_job_command

from bench import figures, procs, report, time_left
from bench.figures import CELERY, OURS, PLAIN
from support.servers import stop_process

RESULTS = Path(__file__).resolve().parent
WORKER_COUNTS = (1, 2, 4)
# Jobs per short-job throughput sample, sized so each sample takes one to three seconds.
SHORT_JOBS = {"fork": 60, "simple": 200, "celery": 300}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def stop_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        stop_process(process)


def web_figures(raw, stack, server, base, status_url, web, workers, quick) -> None:
    """The figures both stacks take the same way once their workers are done: worker memory, then
    (workers stopped, so only requests count) Redis cost per request, start throughput, web memory
    and the web's Redis connections."""
    raw["rss_worker", stack].append(procs.peak_rss_mib(workers[0].pid))
    stop_all(workers)
    raw["request_cost", stack].append(
        {
            "per_status_get": figures.cost_of_requests(server, status_url, "GET"),
            "per_post": figures.cost_of_requests(server, f"{base}/longtask", "POST"),
        }
    )
    raw["post", stack].append(figures.throughput(f"{base}/longtask", "POST", 1 if quick else 3))
    raw["rss_web", stack].append(procs.peak_rss_mib(web.pid))
    raw["web_connections_idle", stack].append(procs.redis_connections(web.pid, server.port))


def our_round(server, saves, raw, state, quick) -> None:
    web, base = procs.start_our_web(server.url)
    # No coalescing, so the cost figure counts every save; the 0.25 s steps timed here are
    # slower than the default 10 saves a second anyway.
    workers = procs.start_rq_workers(server.url, 1, env={"PROGRESS_MAX_SAVES_PER_S": "0"})
    procs.wait_rq_workers(server.url, 1)
    try:
        if "events" not in state:
            state["events"] = figures.has_event_stream(base, saves)
            log(
                f"event stream route: {'present' if state['events'] else 'ABSENT, measuring /status polling'}"
            )
        raw["progress", OURS].append(
            figures.progress_latency(base, saves, state["events"], steps=8 if quick else 20)
        )
        raw["start", OURS].append(figures.start_latency(figures.web_starter(base), saves, 5 if quick else 15))
        raw["cost", OURS].append(figures.cost_of_jobs(server, base, saves))
        # Before the 64-connection load, which fills the web's Redis pool whatever the streams do.
        if state["events"]:
            try:
                # Per web process: a one-process web of its own, so the count is that process's.
                single, single_base = procs.start_our_web(server.url, processes=1)
                try:
                    found = figures.stream_connections(single_base, single.pid, server.port)
                finally:
                    stop_all([single])
                send_stop_job_command(Redis.from_url(server.url), found["job_id"])
                raw["streams", OURS].append(found["connections"])
            except Exception as exc:  # keep the other figures; the table says "n/a"
                log(f"event stream connections not measured: {exc!r}")
        status_url = figures.finished_job(base, saves)
        raw["status", OURS].append(figures.throughput(status_url, "GET", 1 if quick else 3))
        web_figures(raw, OURS, server, base, status_url, web, workers, quick)
    finally:
        stop_all([*workers, web])
        server.flush()


def celery_round(server, saves, raw, quick) -> None:
    web, base = procs.start_peer_web(server.url)
    worker = procs.start_celery_worker(server.url)
    try:
        figures.celery_ready(server.url)
        raw["progress", CELERY].append(figures.progress_latency(base, saves, False, steps=8 if quick else 20))
        raw["start", CELERY].append(
            figures.start_latency(figures.web_starter(base), saves, 5 if quick else 15)
        )
        raw["cost", CELERY].append(figures.cost_of_jobs(server, base, saves))
        status_url = figures.finished_job(base, saves)
        raw["status", CELERY].append(figures.throughput(status_url, "GET", 1 if quick else 3))
        web_figures(raw, CELERY, server, base, status_url, web, [worker], quick)
    finally:
        stop_all([worker, web])
        server.flush()


def plain_round(server, saves, raw, quick) -> None:
    workers = procs.start_rq_workers(server.url, 1)
    procs.wait_rq_workers(server.url, 1)
    try:
        raw["start", PLAIN].append(
            figures.start_latency(figures.rq_starter(server.url), saves, 5 if quick else 15)
        )
        raw["cost", PLAIN].append(figures.cost_of_plain_job(server, server.url))
        raw["rss_worker", PLAIN].append(procs.peak_rss_mib(workers[0].pid))
    finally:
        stop_all(workers)
        server.flush()


def short_jobs_round(server, raw, quick) -> None:
    from rq import Queue

    from jobs.registry import start_job

    connection = Redis.from_url(server.url)
    queue = Queue("default", connection=connection)
    scale = 0.5 if quick else 1.0
    enqueue = {
        OURS: lambda: start_job(connection, "long_task", {"steps": 1, "step_seconds": 0}).id,
        PLAIN: lambda: queue.enqueue("bench.jobs.noop").id,
    }
    for count in WORKER_COUNTS:
        for stack in (OURS, PLAIN):
            for kind, worker_class in (("fork", None), ("simple", "rq.worker.SimpleWorker")):
                workers = procs.start_rq_workers(server.url, count, worker_class)
                try:
                    procs.wait_rq_workers(server.url, count)
                    rate = figures.short_jobs_rq(server.url, enqueue[stack], int(SHORT_JOBS[kind] * scale))
                    raw[f"short_{kind}_{count}", stack].append(rate)
                finally:
                    stop_all(workers)
                    server.flush()
        worker = procs.start_celery_worker(server.url, count)
        try:
            figures.celery_ready(server.url)
            rate = figures.short_jobs_celery(server.url, int(SHORT_JOBS["celery"] * scale))
            raw[f"short_prefork_{count}", CELERY].append(rate)
        finally:
            stop_all([worker])
            server.flush()
        log(f"short jobs through {count} worker(s) done")


def growth(server, saves, quick) -> dict:
    """Status read and dashboard page times with 100, 10,000 and 100,000 finished jobs kept."""
    web, base = procs.start_our_web(server.url)
    workers = procs.start_rq_workers(server.url, 1)
    found: dict = {"levels": {}}
    try:
        procs.wait_rq_workers(server.url, 1)
        status_url = figures.finished_job(base, saves)
        stop_all(workers)
        found["dashboard"] = figures.has_dashboard(base)
        log(f"rq-dashboard at /rq: {'present' if found['dashboard'] else 'ABSENT, measuring status only'}")
        template = status_url.rsplit("/", 1)[-1]
        seeded = 1
        for level in (100, 1_000, 10_000) if quick else (100, 10_000, 100_000):
            figures.seed_finished_jobs(server.client, template, level - seeded)
            seeded = level
            samples = [figures.status_read_ms(status_url, 30 if quick else 60) for _ in range(3)]
            entry = {"status_p50_ms": statistics.median(samples), "status_runs": samples}
            if found["dashboard"]:
                try:
                    pages = [figures.dashboard_page_ms(base, 3) for _ in range(3)]
                    entry.update(dashboard_ms=statistics.median(pages), dashboard_runs=pages)
                except Exception as exc:  # keep the other figures when the dashboard misbehaves
                    entry["dashboard_error"] = repr(exc)[:200]
            found["levels"][str(level)] = entry
            log(f"growth {level}: {entry}")
    finally:
        stop_all([*workers, web])
        server.flush()
    return found


def time_left_round(server, quick) -> dict:
    """The error of the time left our payloads give (`bench/time_left.py`), on the Procfile's processes."""
    web, base = procs.start_our_web(server.url)
    workers = procs.start_rq_workers(server.url, 1)
    try:
        procs.wait_rq_workers(server.url, 1)
        return time_left.measure(server.url, base, steps=20 if quick else 40, step_s=0.2)
    finally:
        stop_all([*workers, web])
        server.flush()


def machine(server) -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            name: version(name) for name in ("rq", "redis", "flask", "gunicorn", "gevent", "celery")
        },
        "redis_server": f"{server.version} ({server.kind})",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one short run, to check the harness")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results.{json,md,png} go")
    args = parser.parse_args()
    runs = 1 if args.quick else max(3, args.runs)
    began = time.perf_counter()
    server = procs.RedisServer()
    saves = figures.Saves(server.url)
    raw: dict = defaultdict(list)
    state: dict = {}
    results = {"machine": machine(server), "runs": runs, "note": os.environ.get("BENCH_NOTE", "")}
    log(f"Redis: {results['machine']['redis_server']}; {runs} run(s)")
    try:
        for run in range(runs):
            order = [our_round, celery_round] if run % 2 == 0 else [celery_round, our_round]
            for round_ in order:
                if round_ is our_round:
                    our_round(server, saves, raw, state, args.quick)
                else:
                    celery_round(server, saves, raw, args.quick)
                log(f"run {run + 1}: {round_.__name__} done")
            plain_round(server, saves, raw, args.quick)
            short_jobs_round(server, raw, args.quick)
            log(f"run {run + 1} of {runs} done")
        results["growth"] = growth(server, saves, args.quick)
        results["time_left"] = time_left_round(server, args.quick)
        log("time left measured")
    finally:
        saves.close()
        server.stop()
    results["event_stream"] = state.get("events", False)
    results["raw"] = {f"{key[0]}|{key[1]}": values for key, values in raw.items()}
    results["summary"] = report.summarize(raw)
    results["wall_s"] = round(time.perf_counter() - began, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = report.markdown(results) + time_left.markdown(results["time_left"])
    (args.out / "results.md").write_text(markdown)
    report.chart(results, args.out / "results.png")
    if args.out == RESULTS and report.update_readme(RESULTS.parent / "README.md", markdown):
        log("updated the results block of README.md")
    log(f"wrote {args.out}/results.json, results.md, results.png in {results['wall_s']} s")
    print((args.out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
