"""`make bench`: run every figure against real processes and write bench/results.{json,md,png}.

Each run measures our stack and the tutorial's (Flask + Celery) one after the other, in
alternating order, then plain RQ, short jobs' drain rate and push latency (1, 100 and
`--streams` event streams on one web process); after the runs, status reads as jobs pile up,
the time left's error, and a waiting job's figures (`bench/waiting.py`). Figures are medians
over runs and comparisons are medians of per-run ratios, so a noisy neighbour hits both sides
alike. Every wrk run's output is kept in results.json. Options: `--runs N` (default 3),
`--duration S` (seconds per wrk run, default 5), `--streams N` (default 5,000), `--quick` (one
short run, to check the harness).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

from bench import chart, figures, procs, report, rounds, short_jobs, time_left, waiting, wrk
from bench.rounds import stop_all

RESULTS = Path(__file__).resolve().parent
# The benchmark page: its results block is rewritten by each run written to RESULTS.
PAGE = RESULTS.parent / "docs" / "benchmarks.md"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


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
            name: version(name)
            for name in ("rq", "redis", "hiredis", "flask", "granian", "gunicorn", "gevent", "celery")
        },
        "redis_server": f"{server.version} ({server.kind})",
        "wrk": wrk.version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def one_run(bench: rounds.Bench, streams: int) -> None:
    """Both stacks in alternating order, then plain RQ, short jobs' drain rates and push latency."""
    stacks = [rounds.our_round, rounds.celery_round]
    for round_ in stacks if bench.run % 2 == 0 else stacks[::-1]:
        round_(bench)
        log(f"run {bench.run + 1}: {round_.__name__} done")
    rounds.plain_round(bench)
    short_jobs.short_jobs_round(bench.server, bench.raw, bench.quick, bench.run)
    rounds.push_round(bench, streams)
    log(f"run {bench.run + 1}: push latency done")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each measured wrk run")
    parser.add_argument("--streams", type=int, default=5000, help="event streams on one web process")
    parser.add_argument("--quick", action="store_true", help="one short run, to check the harness")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results.{json,md,png} go")
    parser.add_argument("--render", action="store_true", help="only redraw the tables from results.json")
    args = parser.parse_args()
    if args.render:
        return write(json.loads((args.out / "results.json").read_text()), args.out)
    wrk.ensure_installed()
    runs = 1 if args.quick else max(3, args.runs)
    duration = min(args.duration, 2.0) if args.quick else args.duration
    streams = min(args.streams, 500) if args.quick else args.streams
    began = time.perf_counter()
    server = procs.RedisServer()
    bench = rounds.Bench(server, figures.Saves(server.url), args.quick, duration)
    results = {
        "machine": machine(server),
        "runs": runs,
        "wrk": {"threads": wrk.THREADS, "connections": wrk.CONNECTIONS, "duration_s": duration},
        "streams": streams,
        "default_queue_max_jobs": rounds.DEFAULTS["QUEUE_MAX_JOBS"],
        "note": os.environ.get("BENCH_NOTE", ""),
    }
    log(f"Redis: {results['machine']['redis_server']}; {runs} run(s)")
    try:
        for run in range(runs):
            bench.run = run
            one_run(bench, streams)
            log(f"run {run + 1} of {runs} done")
        results["growth"] = growth(server, bench.saves, args.quick)
        results["time_left"] = time_left_round(server, args.quick)
        log("time left measured")
        results["waiting"] = waiting.run(server, args.quick, duration)
        log("waiting measured")
    finally:
        bench.saves.close()
        server.stop()
    results["event_stream"] = bench.state.get("events", False)
    results["raw"] = {f"{key[0]}|{key[1]}": values for key, values in bench.raw.items()}
    results["wrk_runs"] = bench.wrk_runs
    results["summary"] = report.summarize(bench.raw)
    results["wall_s"] = round(time.perf_counter() - began, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return write(results, args.out)


def write(results: dict, out: Path) -> int:
    """results.md, results.png and (for the default place) docs/benchmarks.md's block, from the results."""
    raw = {tuple(key.split("|", 1)): values for key, values in results["raw"].items()}
    results["summary"] = report.summarize(raw)
    markdown = report.markdown(results)
    if "time_left" in results:
        markdown += time_left.markdown(results["time_left"])
    if "waiting" in results:
        markdown += waiting.markdown(results["waiting"])
    (out / "results.md").write_text(markdown)
    chart.draw(results, out / "results.png")
    if out == RESULTS and report.update_page(PAGE, markdown):
        log(f"updated the results block of {PAGE}")
    log(f"wrote {out}/results.json, results.md, results.png")
    print((out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
