"""Short jobs: throughput, start latency and Redis commands per job, for each worker kind.

Kinds: RQ's forking `Worker` ("fork"), `SimpleWorker` ("simple"), the Procfile's own `jobs.worker.Worker`
("warm": its warm work horse) and Celery's prefork pool, each started with 1, 2 and 4
processes, for ours (1-step demo jobs through `start_job`, so our callbacks and progress saves
run) and plain RQ (no-op jobs; on the warm kind, no-op jobs through our worker class). Celery
runs both a no-op task and the tutorial's own task with one step (`short_prefork_task_*`), the
like-for-like peer of our 1-step demo job. The kinds run one after the other in an order that turns over
from run to run, each on freshly started processes against the same server.

Start latency (one process, idle) runs from the enqueue to the job's start as the worker
records it (RQ's `started_at`; the time a Celery task returns). Commands per job are the
server's `INFO commandstats` over the same one-at-a-time jobs, less the idle rate and less the
bench's own status polls (one command each).
"""

import json
import time
from datetime import UTC

from redis import Redis

from bench import figures, procs
from bench.figures import CELERY, OURS, PLAIN, percentile
from bench.rounds import stop_all
from jobs.dequeue import ReliableQueue

WORKER_COUNTS = (1, 2, 4)
# `rq worker --worker-class` of each RQ kind (None: the Procfile's own).
RQ_KINDS = {"warm": None, "fork": procs.PLAIN_RQ_WORKER, "simple": "rq.worker.SimpleWorker"}
# Jobs per throughput sample, sized so each sample takes one to three seconds.
SHORT_JOBS = {"fork": 60, "simple": 200, "warm": 200, "prefork": 300}
# One-at-a-time jobs for start latency and commands per job.
SAMPLES = 15
POLL_S = 0.01


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def short_jobs_round(server, raw, quick, run: int = 0) -> None:
    """Every kind with 1, 2 and 4 processes; start latency and commands per job with one."""
    from rq import Queue

    from jobs.registry import start_job

    connection = Redis.from_url(server.url)
    queue = Queue("default", connection=connection)
    # Our worker class with bare no-op jobs: enqueued through our queue class, whose enqueue
    # wakes an idle worker (RQ's own `Queue` does not; our worker then looks once a second).
    ours_bare = ReliableQueue("default", connection=connection)
    scale = 0.5 if quick else 1.0
    enqueue = {
        OURS: lambda: start_job(connection, "long_task", {"steps": 1, "step_seconds": 0}).id,
        PLAIN: lambda: queue.enqueue("bench.jobs.noop").id,
    }
    bare = {**enqueue, PLAIN: lambda: ours_bare.enqueue("bench.jobs.noop").id}
    kinds = [*RQ_KINDS, "prefork"]
    if run % 2:
        kinds.reverse()
    for count in WORKER_COUNTS:
        for kind in kinds:
            stacks = (CELERY,) if kind == "prefork" else (OURS, PLAIN)
            starters = bare if RQ_KINDS.get(kind, "") is None else enqueue
            for stack in stacks:
                workers = _start(server.url, kind, count)
                try:
                    jobs = int(SHORT_JOBS[kind] * scale)
                    if kind == "prefork":
                        rate = figures.short_jobs_celery(server.url, jobs)
                        task_rate = figures.short_jobs_celery(server.url, jobs, task="long_task")
                        raw[f"short_prefork_task_{count}", stack].append(task_rate)
                    else:
                        rate = figures.short_jobs_rq(server.url, starters[stack], jobs)
                    raw[f"short_{kind}_{count}", stack].append(rate)
                    if count == 1:
                        samples = 5 if quick else SAMPLES
                        one = (
                            _celery_one(server.url)
                            if kind == "prefork"
                            else _rq_one(connection, starters[stack])
                        )
                        latency, commands = one_at_a_time(server, one, samples)
                        raw[f"short_start_{kind}", stack].append(latency)
                        raw[f"short_cost_{kind}", stack].append(commands)
                finally:
                    stop_all(workers)
                    server.flush()
        log(f"short jobs through {count} worker(s) done")


def _start(redis_url: str, kind: str, count: int):
    if kind == "prefork":
        worker = procs.start_celery_worker(redis_url, count)
        figures.celery_ready(redis_url)
        return [worker]
    workers = procs.start_rq_workers(redis_url, count, RQ_KINDS[kind])
    procs.wait_rq_workers(redis_url, count)
    return workers


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
