"""Short jobs: drain rate, start latency and Redis commands per job, for each worker kind.

Kinds: RQ's forking `Worker` ("fork"), `SimpleWorker` ("simple"), the Procfile's own `jobs.worker.Worker`
("warm": its warm work horse) and Celery's prefork pool, each with 1, 2 and 4 processes, for
ours (1-step demo jobs through `start_job`, so our callbacks and progress saves run) and plain
RQ (no-op jobs through RQ's own `Queue`). Celery runs both a no-op task and the tutorial's own
task with one step (`drain_prefork_task_*`), the like-for-like peer of our 1-step demo job.

Each sample fills the queue while no worker runs, then starts the workers (all processes at
once) and times the drain from the jobs' own end times (`bench/drain.py`), on a server flushed
before the next sample. The kinds run one after the other in an order that turns over from run
to run. Jobs per sample scale with the processes, so each drain lasts about a second or more.

Start latency (one process, idle, on the workers that have just drained) runs from the enqueue
to the job's start as the worker records it (RQ's `started_at`; the time a Celery task
returns). Commands per job are the server's `INFO commandstats` over the same one-at-a-time
jobs, less the idle rate and less the bench's own status polls (one command each).
"""

import json
import time
from datetime import UTC

from redis import Redis

from bench import drain, figures, procs
from bench.figures import CELERY, OURS, PLAIN, percentile
from bench.rounds import stop_all
from jobs.worker.dequeue import ReliableQueue

WORKER_COUNTS = (1, 2, 4)
# `rq worker --worker-class` of each RQ kind (None: the Procfile's own).
RQ_KINDS = {"warm": None, "fork": procs.PLAIN_RQ_WORKER, "simple": "rq.worker.SimpleWorker"}
# Jobs per drain sample and per worker process, sized so each drain lasts a second or more.
DRAIN_JOBS = {"fork": 120, "simple": 600, "warm": 600, "prefork": 600}
RQ_QUEUES = ("rq:queue:high", "rq:queue:default", "rq:queue:low")
CELERY_QUEUES = ("celery",)
# The tutorial's task with one step of no wait, like our 1-step demo job; and a no-op task.
ONE_STEP = {"steps": 1, "step_seconds": 0}
# One-at-a-time jobs for start latency and commands per job.
SAMPLES = 15
POLL_S = 0.01


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def short_jobs_round(server, raw, quick, run: int = 0) -> None:
    """Every kind with 1, 2 and 4 processes; start latency and commands per job with one."""
    from celery import Celery
    from rq import Queue

    from jobs.registry import start_job

    connection = Redis.from_url(server.url)
    queue = Queue("default", connection=connection)
    celery = Celery("app", broker=server.url, backend=server.url)
    fills = {
        OURS: lambda: start_job(connection, "long_task", ONE_STEP).id,
        PLAIN: lambda: queue.enqueue("bench.jobs.noop").id,
    }
    # One at a time on an idle worker, our worker class is woken by our queue class's enqueue
    # (RQ's own `Queue` does not wake it; it would look once a second).
    ours_bare = ReliableQueue("default", connection=connection)
    one_by_one = {**fills, PLAIN: lambda: ours_bare.enqueue("bench.jobs.noop").id}
    tasks = {
        "drain_prefork_task": lambda: celery.send_task("app.long_task", kwargs=ONE_STEP).id,
        "drain_prefork": lambda: celery.send_task("app.noop").id,
    }
    scale = 0.5 if quick else 1.0
    kinds = [*RQ_KINDS, "prefork"]
    if run % 2:
        kinds.reverse()
    for count in WORKER_COUNTS:
        for kind in kinds:
            jobs = int(DRAIN_JOBS[kind] * count * scale)
            if kind == "prefork":
                samples = [(name, CELERY, fill) for name, fill in tasks.items()]
            else:
                samples = [(f"drain_{kind}", stack, fill) for stack, fill in fills.items()]
            for name, stack, fill in samples:
                workers, found = drain_sample(server, kind, count, fill, jobs)
                try:
                    raw[f"{name}_{count}", stack].append(found)
                    log(f"{name}_{count} {stack}: {found}")
                    if count == 1 and name != "drain_prefork_task" and "error" not in found:
                        one = (
                            _celery_one(server.url)
                            if kind == "prefork"
                            else _rq_one(connection, one_by_one[stack])
                        )
                        latency, commands = one_at_a_time(server, one, 5 if quick else SAMPLES)
                        raw[f"short_start_{kind}", stack].append(latency)
                        raw[f"short_cost_{kind}", stack].append(commands)
                finally:
                    stop_all(workers)
                    server.flush()
        log(f"short jobs through {count} worker(s) done")


def drain_sample(server, kind: str, count: int, fill, jobs: int) -> tuple[list, dict]:
    """Fill the queue with `jobs` jobs, then start `count` processes of `kind` and time their drain.

    Returns:
        The running workers (the caller stops them) and the sample's figures (`drain.figures`,
        plus `fill_s`), or {"error": ...} when the drain did not end, so the runs stay paired.
    """
    ids, fill_s = drain.fill(fill, jobs)
    launched = time.time()
    if kind == "prefork":
        workers = [procs.start_celery_worker(server.url, count)]
        keys, read = CELERY_QUEUES, drain.celery_ends
    else:
        workers = procs.start_rq_workers(server.url, count, RQ_KINDS[kind])
        keys, read = RQ_QUEUES, drain.rq_ends
    try:
        ends = drain.wait_drained(server.client, ids, keys, read)
    except AssertionError as exc:
        return workers, {"error": str(exc)[:300], "fill_s": fill_s}
    except BaseException:
        stop_all(workers)
        raise
    return workers, {**drain.figures(ends, launched), "fill_s": fill_s}


def _rq_one(connection: Redis, enqueue_one):
    """A starter of one RQ job, returning (is it done? in one command, its start delay in seconds)."""

    ended = figures.rq_ended(connection)

    def one():
        job_id = enqueue_one()

        def done() -> bool:
            return ended(job_id)

        def delay() -> float:
            from rq.job import Job

            job = Job.fetch(job_id, connection=connection)
            started, enqueued = job.started_at, job.enqueued_at
            return (started.replace(tzinfo=UTC) - enqueued.replace(tzinfo=UTC)).total_seconds()

        return done, delay

    return one


def _celery_one(redis_url: str):
    """A starter of one Celery task, returning (is it done? in one command, its start delay in seconds)."""
    from celery import Celery

    client = Celery("app", broker=redis_url, backend=redis_url)
    connection = Redis.from_url(redis_url)

    def one():
        sent = time.time()
        key = f"celery-task-meta-{client.send_task('app.noop').id}"
        return (lambda: connection.exists(key) == 1), (
            lambda: json.loads(connection.get(key))["result"] - sent
        )

    return one


def one_at_a_time(server, one, samples: int) -> tuple[dict, float]:
    """Run `samples` jobs one at a time on an idle worker.

    Returns:
        Start latency p50/p95 in ms, and Redis commands per job (net of idle and of our polls).
    """
    idle = figures.idle_rate(server)
    delays, polls = [], 0
    server.reset_stats()
    began = time.perf_counter()
    for _ in range(samples):
        done, delay = one()
        while True:
            polls += 1
            if done():
                break
            time.sleep(POLL_S)
        delays.append(delay)
        time.sleep(0.05)  # the worker's bookkeeping after the end, before the next job
    elapsed = time.perf_counter() - began
    commands = server.command_count() - polls
    seconds = [delay() for delay in delays]
    latency = {
        "p50_ms": round(percentile(seconds, 0.5) * 1000, 1),
        "p95_ms": round(percentile(seconds, 0.95) * 1000, 1),
    }
    return latency, round((commands - idle * elapsed) / samples, 1)
