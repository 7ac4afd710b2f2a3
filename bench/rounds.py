"""One round of each stack: the same figures, taken the same way, against freshly started processes.

Our stack and the tutorial's each get two web starts per round. The first (ours with the waiting
cap out of reach, `QUEUE_MAX_JOBS` set far above what 5 s of starts can fill) gives the latency
figures with a worker running, then `GET /status` under wrk, then, workers stopped so that only
the requests cost CPU, `POST /longtask` under wrk. The second keeps every default (ours: the
default cap) and one worker draining short jobs while wrk posts: what a default deployment answers.
Both webs run two processes without an access log (our Procfile's line minus `--access-logfile`;
the tutorial's gunicorn has none by default).
"""

import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field

from redis import Redis

from bench import figures, procs, wrk
from bench.figures import CELERY, OURS, PLAIN
from support.servers import stop_process
from web.config import DEFAULTS, queue_names

# Every start posts the same short job to both stacks, so a draining worker keeps up as best it can.
START_BODY = '{"steps": 1, "step_seconds": 0}'
JSON = {"Content-Type": "application/json"}
CAP_OUT_OF_REACH = 1_000_000_000
WARM_UP_S = 1.0


@dataclass
class Bench:
    """What every round reads and adds to: the server, the options, the raw samples."""

    server: procs.RedisServer
    saves: figures.Saves
    quick: bool
    duration_s: float
    run: int = 0
    raw: dict = field(default_factory=lambda: defaultdict(list))
    wrk_runs: list = field(default_factory=list)
    state: dict = field(default_factory=dict)


def stop_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        stop_process(process)


def load(bench: Bench, stack: str, figure: str, url: str, warm_url: str, success: int, post: bool) -> dict:
    """A 1 s wrk warm-up on `warm_url`, then the measured wrk run; both outputs kept in `wrk_runs`."""
    label = {"run": bench.run + 1, "stack": stack, "figure": figure}
    warm = wrk.run(warm_url, duration_s=WARM_UP_S)
    bench.wrk_runs.append({**label, "warm_up": True, **warm})
    method, body, headers = ("POST", START_BODY, JSON) if post else ("GET", "", None)
    measured = wrk.run(url, method, body, headers, duration_s=bench.duration_s)
    found = wrk.figures(measured["result"], success)
    bench.wrk_runs.append({**label, "warm_up": False, **measured, "figures": found})
    bench.raw[figure, stack].append(found)
    return found


def waiting_jobs(connection: Redis, stack: str) -> int:
    """Jobs still waiting in the broker: our queues, or Celery's `celery` list."""
    if stack == CELERY:
        return connection.llen("celery")
    from rq import Queue

    return sum(Queue(name, connection=connection).count for name in queue_names(DEFAULTS["QUEUES"]))


def web_figures(bench: Bench, stack: str, base: str, status_url: str, web, workers) -> None:
    """Figures both stacks take alike once their latency figures are in: status reads under wrk,
    then (workers stopped) Redis cost per request, starts under wrk, web memory and connections."""
    server, raw = bench.server, bench.raw
    load(bench, stack, "status", status_url, status_url, 200, post=False)
    raw["rss_worker", stack].append(procs.peak_rss_mib(workers[0].pid))
    stop_all(workers)
    raw["request_cost", stack].append(
        {
            "per_status_get": figures.cost_of_requests(server, status_url, "GET"),
            "per_post": figures.cost_of_requests(server, f"{base}/longtask", "POST"),
        }
    )
    load(bench, stack, "post", f"{base}/longtask", status_url, 202, post=True)
    raw["rss_web", stack].append(procs.peak_rss_mib(web.pid))
    raw["web_connections_idle", stack].append(procs.redis_connections(web.pid, server.port))


def draining(bench: Bench, stack: str, base: str) -> None:
    """POST /longtask under wrk with every default and one worker draining (ours: the default cap)."""
    status_url = figures.finished_job(base, bench.saves)
    found = load(bench, stack, "post_default", f"{base}/longtask", status_url, 202, post=True)
    left = waiting_jobs(bench.server.client, stack)
    found["drained_per_s"] = round(max(0, found["ok"] - left) / bench.duration_s, 1)
    found["waiting_at_end"] = left


def our_round(bench: Bench) -> None:
    server, saves, raw, quick = bench.server, bench.saves, bench.raw, bench.quick
    web, base = procs.start_our_web(server.url, env={"QUEUE_MAX_JOBS": str(CAP_OUT_OF_REACH)})
    # No coalescing, so the cost figure counts every save; the 0.25 s steps timed here are
    # slower than the default 10 saves a second anyway.
    workers = procs.start_rq_workers(server.url, 1, env={"PROGRESS_MAX_SAVES_PER_S": "0"})
    procs.wait_rq_workers(server.url, 1)
    try:
        if "events" not in bench.state:
            bench.state["events"] = figures.has_event_stream(base, saves)
        raw["progress", OURS].append(
            figures.progress_latency(base, saves, bench.state["events"], steps=8 if quick else 20)
        )
        raw["start", OURS].append(figures.start_latency(figures.web_starter(base), saves, 5 if quick else 15))
        raw["cost", OURS].append(figures.cost_of_jobs(server, base, saves))
        web_figures(bench, OURS, base, figures.finished_job(base, saves), web, workers)
    finally:
        stop_all([*workers, web])
        server.flush()
    web, base = procs.start_our_web(server.url)
    workers = procs.start_rq_workers(server.url, 1)
    procs.wait_rq_workers(server.url, 1)
    try:
        draining(bench, OURS, base)
    finally:
        stop_all([*workers, web])
        server.flush()


def celery_round(bench: Bench) -> None:
    server, saves, raw, quick = bench.server, bench.saves, bench.raw, bench.quick
    web, base = procs.start_peer_web(server.url)
    worker = procs.start_celery_worker(server.url)
    try:
        figures.celery_ready(server.url)
        raw["progress", CELERY].append(figures.progress_latency(base, saves, False, steps=8 if quick else 20))
        raw["start", CELERY].append(
            figures.start_latency(figures.web_starter(base), saves, 5 if quick else 15)
        )
        raw["cost", CELERY].append(figures.cost_of_jobs(server, base, saves))
        web_figures(bench, CELERY, base, figures.finished_job(base, saves), web, [worker])
    finally:
        stop_all([worker, web])
        server.flush()
    web, base = procs.start_peer_web(server.url)
    worker = procs.start_celery_worker(server.url)
    try:
        figures.celery_ready(server.url)
        draining(bench, CELERY, base)
    finally:
        stop_all([worker, web])
        server.flush()


def plain_round(bench: Bench) -> None:
    server, saves, raw = bench.server, bench.saves, bench.raw
    workers = procs.start_rq_workers(server.url, 1, procs.PLAIN_RQ_WORKER)  # RQ alone: its stock worker
    procs.wait_rq_workers(server.url, 1)
    try:
        raw["start", PLAIN].append(
            figures.start_latency(
                figures.rq_starter(server.url),
                saves,
                5 if bench.quick else 15,
                figures.rq_ended(server.client),
            )
        )
        raw["cost", PLAIN].append(figures.cost_of_plain_job(server, server.url))
        raw["rss_worker", PLAIN].append(procs.peak_rss_mib(workers[0].pid))
    finally:
        stop_all(workers)
        server.flush()


def push_scenarios(quick: bool, streams: int) -> dict[str, list[str]]:
    """`bench.push` arguments per scenario: 1 stream (with the 2 s poller), 100 streams, `streams` streams.

    1 and 100 streams watch a job saving 241 updates 25 times a second; the crowd watches one
    saving 21 updates twice a second (each update is one frame per stream).
    """
    fast = ["--updates", "61" if quick else "241", "--interval-s", "0.04"]
    return {
        "push_1": ["--streams", "1", *fast, "--poll"],
        "push_100": ["--streams", "100", *fast],
        "push_scale": [
            "--streams",
            str(streams),
            "--updates",
            "11" if quick else "21",
            "--interval-s",
            "0.5",
        ],
    }


def push_round(bench: Bench, streams: int) -> None:
    """Each push scenario in a process of its own (its event loop alone on its interpreter)."""
    for figure, arguments in push_scenarios(bench.quick, streams).items():
        command = [sys.executable, "-m", "bench.push", "--redis-url", bench.server.url, *arguments]
        try:
            done = subprocess.run(command, cwd=procs.ROOT, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(done.stderr.strip()[-800:])
            found = json.loads(done.stdout.strip().splitlines()[-1])
        except Exception as exc:  # keep the other figures; the table says what failed
            found = {"error": repr(exc)[-800:]}
        bench.raw[figure, OURS].append(found)
        bench.server.flush()
