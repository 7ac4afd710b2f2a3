"""A worker's drain rate: fill its queue while no worker runs, start the workers, time the drain.

The producer is out of the measured window: every job is enqueued before any worker process
exists, so the enqueuer shares no core with the workers while they run. The window is read from
the jobs' own end times, the same kind of timestamp on both stacks: RQ's `ended_at` (in the job's
hash) and Celery's `date_done` (in its result), both written by the worker as the job ends. It
runs from the first job's end to the last one's, and the rate is (jobs ended - 1) / window. The
first end, not the workers' start, opens it: a worker's boot (Celery's is longer than RQ's) and
its first job's start-up are not draining, and Celery records no start time (`date_done` is only
written in a ready state). Only jobs that succeeded count; failed ones are reported beside.
"""

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from redis import Redis

from bench.figures import CELERY, OURS, PLAIN
from bench.tables import fmt, get
from support.wait import wait_until

# Worker processes of the drain samples, and the field of a drain sample that is its rate.
COUNTS = (1, 2, 4)
FIELD = "jobs_per_s"

# How often the bench looks whether the drain is over; cheap looks (list lengths) until the
# queues are empty, so the polling takes little from the workers it times.
POLL_S = 0.2
# Seconds allowed per job before a drain counts as stuck, and at least this long in all.
TIMEOUT_PER_JOB_S = 0.25
MIN_TIMEOUT_S = 60.0


def epoch(stamp: str | bytes) -> float:
    """Seconds since the epoch of an ISO 8601 time (RQ's `...Z`, Celery's `...+00:00`); naive is UTC."""
    when = datetime.fromisoformat(stamp.decode() if isinstance(stamp, bytes) else stamp)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def fill(enqueue_one: Callable[[], str], count: int) -> tuple[list[str], float]:
    """Enqueue `count` jobs; returns their ids and how long the enqueuing took (outside the window)."""
    began = time.perf_counter()
    ids = [enqueue_one() for _ in range(count)]
    return ids, round(time.perf_counter() - began, 3)


def figures(ends: Sequence[tuple[float | None, bool, str | None]], launched_at: float | None = None) -> dict:
    """The drain figures of one sample, from each job's (end time, succeeded?, worker name or None).

    Returns:
        `jobs_per_s` ((succeeded - 1) / window, None with fewer than two ends), `window_s`, `jobs`
        (succeeded), `failed`; `launch_to_first_end_s` when the workers' launch time is given
        (boot included: a diagnostic, not the rate); and where workers are named (RQ), `workers`
        that ended a job and `all_working_after_s`, the time from the first end until the last of
        them ended its first job (how long the window ran with fewer processes than asked).
    """
    done = sorted(end for end, ok, _ in ends if ok and end is not None)
    found: dict = {"jobs": len(done), "failed": sum(1 for _, ok, _ in ends if not ok)}
    window = done[-1] - done[0] if len(done) > 1 else 0.0
    found["window_s"] = round(window, 4)
    found["jobs_per_s"] = round((len(done) - 1) / window, 1) if window > 0 else None
    if launched_at is not None and done:
        found["launch_to_first_end_s"] = round(done[0] - launched_at, 3)
    firsts: dict[str, float] = {}
    for end, ok, worker in ends:
        if ok and end is not None and worker:
            firsts[worker] = min(end, firsts.get(worker, end))
    if firsts:
        found["workers"] = len(firsts)
        found["all_working_after_s"] = round(max(firsts.values()) - done[0], 3)
    return found


def rq_ends(connection: Redis, ids: Sequence[str]) -> list[tuple[float | None, bool, str | None]] | None:
    """Each RQ job's (ended_at, finished?, worker name), or None while any job has not ended."""
    pipe = connection.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(f"rq:job:{job_id}", "status", "ended_at", "worker_name")
    ends = []
    for status, ended_at, worker in pipe.execute():
        if status not in (b"finished", b"failed"):
            return None
        ends.append((epoch(ended_at) if ended_at else None, status == b"finished", _text(worker)))
    return ends


def celery_ends(connection: Redis, ids: Sequence[str]) -> list[tuple[float | None, bool, None]] | None:
    """Each Celery task's (date_done, succeeded?, None), or None while any task is not ready."""
    ends = []
    for value in connection.mget([f"celery-task-meta-{task_id}" for task_id in ids]):
        result = json.loads(value) if value else {}
        if result.get("status") not in ("SUCCESS", "FAILURE"):
            return None  # not run yet, or the tutorial's task's PROGRESS state
        done = result.get("date_done")
        ends.append((epoch(done) if done else None, result["status"] == "SUCCESS", None))
    return ends


def wait_drained(
    connection: Redis,
    ids: Sequence[str],
    queue_keys: Sequence[str],
    read_ends: Callable[[Redis, Sequence[str]], list | None],
) -> list:
    """Wait until every job has ended; returns `read_ends`'s answer.

    Args:
        queue_keys: the broker lists the jobs wait in (RQ's queues, Celery's `celery`); the ends
            are read only once they are all empty.

    Raises:
        AssertionError: not drained within the timeout (TIMEOUT_PER_JOB_S a job, MIN_TIMEOUT_S at least).
    """

    def drained():
        if any(connection.llen(key) for key in queue_keys):
            return None
        return read_ends(connection, ids)

    timeout = max(MIN_TIMEOUT_S, TIMEOUT_PER_JOB_S * len(ids))
    return wait_until(drained, timeout, interval_s=POLL_S, what=f"{len(ids)} jobs drained")


def ratio_runs(summary: dict, key: str) -> str:
    """A same-run ratio as 'x<median> (<run 1> / <run 2> / ...)', two decimals."""
    median, runs = summary["ratios"].get(key), summary.get("per_run_ratios", {}).get(key) or []
    if median is None:
        return "n/a"
    return f"x{median:.2f} ({' / '.join(f'{value:.2f}' for value in runs)})"


def markdown_lines(results: dict) -> list[str]:
    """Short jobs' drain rates: the Procfile's worker against Celery's prefork pool, then against
    RQ's own workers; ratios are per run, their median first."""
    s = results["summary"]

    def rate(figure: str, stack: str) -> str:
        return fmt(get(s, figure, stack, FIELD))

    def both(figure: str) -> str:
        return f"{rate(figure, OURS)} / {rate(figure, PLAIN)}"

    lines = [
        "Short jobs, drain rate (jobs/s): the queue is filled while no worker runs, then the workers start; "
        "timed from the first job's end to the last one's (RQ's `ended_at`, Celery's `date_done`).",
        "",
        "| processes | ours: Procfile worker, 1-step demo jobs | Celery prefork -c N, the tutorial's "
        "1-step task | ratio per run | Procfile worker, no-op jobs | Celery prefork -c N, no-op tasks "
        "| ratio per run |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n in COUNTS:
        lines.append(
            f"| {n} | {rate(f'drain_warm_{n}', OURS)} | {rate(f'drain_prefork_task_{n}', CELERY)} | "
            f"{ratio_runs(s, f'drain_{n}_ours_over_tutorial')} | {rate(f'drain_warm_{n}', PLAIN)} | "
            f"{rate(f'drain_prefork_{n}', CELERY)} | {ratio_runs(s, f'drain_{n}_noop_over_tutorial')} |"
        )
    lines += [
        "",
        "| processes | Procfile worker: 1-step / no-op | RQ `Worker` (fork): 1-step / no-op "
        "| RQ `SimpleWorker`: 1-step / no-op | Procfile over fork, per run: 1-step; no-op "
        "| Procfile over SimpleWorker, per run: 1-step; no-op |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for n in COUNTS:
        over = [
            "; ".join(ratio_runs(s, f"drain_{n}_{jobs}_warm_over_{other}") for jobs in ("1step", "noop"))
            for other in ("fork", "simple")
        ]
        lines.append(
            f"| {n} | {both(f'drain_warm_{n}')} | {both(f'drain_fork_{n}')} | {both(f'drain_simple_{n}')} | "
            + " | ".join(over)
            + " |"
        )
    return [*lines, "", note(results)]


def note(results: dict) -> str:
    """What the drain samples held: jobs per sample, failures, the enqueue time left out, the ramp."""
    samples = [
        (figure, run)
        for figure, runs in results["raw"].items()
        if figure.startswith("drain_")
        for run in runs
    ]
    if not samples:
        return "No drain samples in this run."
    errors = [run["error"] for _, run in samples if "error" in run]
    failed = sum(run.get("failed", 0) for _, run in samples)
    sizes = sorted({run.get("jobs", 0) + run.get("failed", 0) for _, run in samples if "error" not in run})
    fills = [run["fill_s"] for _, run in samples if "fill_s" in run]
    ramps = [run["all_working_after_s"] for _, run in samples if run.get("workers", 0) > 1]
    text = (
        f"{len(samples)} drain samples of {fmt(sizes[0]) if sizes else 'n/a'} to "
        f"{fmt(sizes[-1]) if sizes else 'n/a'} jobs (more with more processes); {fmt(failed)} jobs failed "
        f"(not counted); enqueuing them took {fmt(min(fills) if fills else None, ' s')} to "
        f"{fmt(max(fills) if fills else None, ' s')}, before any worker started, outside the window."
    )
    if ramps:
        text += (
            f" With several RQ processes (started together), every process had ended a job at most "
            f"{fmt(max(ramps) * 1000, ' ms')} after the first end (Celery records no worker per task)."
        )
    if errors:
        text += f" {len(errors)} sample(s) did not drain: {errors[0]}"
    return text


def _text(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None
