"""Waiting: how right `expected_start_s` and the history-based `remaining_s` are, and what a place
in line costs to read.

On the Procfile's web and 2 worker processes (the worker line, one per core here), after a few
steady demo jobs have given the demo its history:
- a queue of `--jobs` steady demo jobs started at once: each waiting job's `expected_start_s`, read
  right after the start, against when it really started (RQ's `started_at`; both clocks are this
  machine's); the error is relative to the real wait, and a job that waited less than one step
  is judged by its absolute error only;
- one steady job followed from its start (its pushed payloads, subscribed before the start):
  each save's `remaining_s` against the time really left (RQ's `ended_at` minus the save's
  `updated_at`), judged from its first save, the saves before its own rate has two samples
  (history only) apart;
- `GET /status/<id>` with wrk, of a job waiting 100th in line (the position, the 20 jobs ahead
  read one by one, the running jobs and the workers) against a finished job's (the workers are
  suspended, still registered, meanwhile).

    .venv/bin/python -m bench.waiting [--jobs 20] [--steps 10] [--step-s 0.3] [--quick]
"""

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq.job import Job, JobStatus
from rq.suspension import resume, suspend

from bench import procs, wrk
from bench.rounds import stop_all
from jobs.keys import channel_for
from jobs.registry import start_job
from jobs.snapshot import snapshot
from support.wait import wait_until

TARGET_START = 0.25
TARGET_LEFT = 0.20
WORKERS = 2
LINE_LENGTH = 100


def _epoch(moment) -> float:
    return moment.replace(tzinfo=moment.tzinfo or UTC).timestamp()


def _finished(connection: Redis, ids: list[str], timeout_s: float) -> list[Job]:
    return wait_until(
        lambda: (
            (jobs := Job.fetch_many(ids, connection=connection))
            and all(job is not None and job.get_status(refresh=False) == JobStatus.FINISHED for job in jobs)
            and jobs
        ),
        timeout_s=timeout_s,
        what=f"{len(ids)} jobs finished",
    )


def warm_history(connection: Redis, args: dict[str, Any], runs: int = WORKERS) -> None:
    """Run a few steady jobs so the demo has a history (the bench's Redis starts empty)."""
    ids = [start_job(connection, "long_task", args).id for _ in range(runs)]
    _finished(connection, ids, 120)


def start_times(connection: Redis, args: dict[str, Any], jobs: int) -> dict[str, Any]:
    """`expected_start_s` of a queue of `jobs` steady jobs, read at once, against their real starts."""
    ids = [start_job(connection, "long_task", args).id for _ in range(jobs)]
    reads = {job_id: (time.time(), snapshot(job_id, connection)) for job_id in ids}
    step_s = args["step_seconds"]
    relative, absolute, unknown = [], [], 0
    for job in _finished(connection, ids, 60 + jobs * args["steps"] * step_s):
        read_at, payload = reads[job.id]
        if payload["state"] != "PENDING":
            continue
        if payload["expected_start_s"] is None:
            unknown += 1
            continue
        waited = _epoch(job.started_at) - read_at
        error = abs(read_at + payload["expected_start_s"] - _epoch(job.started_at))
        absolute.append(error)
        if waited >= step_s:
            relative.append(error / waited)
    return {
        "jobs": jobs,
        "judged": len(relative),
        "no_estimate": unknown,
        "relative": _summary(relative, TARGET_START),
        "absolute_s": {
            "median": _round(statistics.median(absolute)) if absolute else None,
            "max": _round(max(absolute)) if absolute else None,
        },
    }


def time_left_from_start(connection: Redis, args: dict[str, Any]) -> dict[str, Any]:
    """Each pushed save's `remaining_s` of one steady job against the time really left."""
    pubsub = connection.pubsub()
    pubsub.psubscribe(channel_for("*"))
    pubsub.get_message(timeout=5)
    job_id = start_job(connection, "long_task", args).id
    saves, deadline = [], time.monotonic() + 60 + args["steps"] * args["step_seconds"]
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1)
        if not message or message["type"] != "pmessage":
            continue
        if message["channel"].decode() != channel_for(job_id):
            continue
        payload = json.loads(message["data"])
        if payload["state"] == "PROGRESS":
            saves.append(payload)
        elif payload["state"] in ("SUCCESS", "FAILURE"):
            break
    pubsub.close()
    ended = _epoch(_finished(connection, [job_id], 30)[0].ended_at)
    errors, history_only, missing = [], [], 0
    for index, payload in enumerate(saves):
        truth = ended - _epoch_text(payload["updated_at"])
        if payload["current"] >= payload["total"] - 1 or truth <= 0:
            continue
        if payload["remaining_s"] is None:
            missing += 1
            continue
        error = abs(payload["remaining_s"] - truth) / truth
        errors.append(error)
        if index < 2:  # before its own rate has two samples: the history alone
            history_only.append(error)
    return {
        "saves": len(saves),
        "null": missing,
        "from_first_save": _summary(errors, TARGET_LEFT),
        "history_only": _summary(history_only, TARGET_LEFT),
        "usual_s": next((payload.get("usual_s") for payload in saves if "usual_s" in payload), None),
    }


def read_rates(connection: Redis, base: str, args: dict[str, Any], duration_s: float) -> dict[str, Any]:
    """wrk on /status of a job 100th in line against a finished job's, workers suspended."""
    finished = start_job(connection, "long_task", {"steps": 1, "step_seconds": 0}).id
    _finished(connection, [finished], 30)
    suspend(connection)
    try:
        waiting = [start_job(connection, "long_task", args).id for _ in range(LINE_LENGTH)]
        position = snapshot(waiting[-1], connection)["position"]
        found = {"position": position}
        for name, job_id in (("waiting", waiting[-1]), ("finished", finished)):
            found[name] = wrk.figures(
                wrk.run(f"{base}/status/{job_id}", duration_s=duration_s)["result"], 200
            )
        found["ratio"] = _round(found["waiting"]["ok_per_s"] / found["finished"]["ok_per_s"])
        for job_id in waiting:
            Job.fetch(job_id, connection=connection).cancel()
        return found
    finally:
        resume(connection)


def measure(
    redis_url: str, base: str, jobs: int, steps: int, step_s: float, duration_s: float
) -> dict[str, Any]:
    """Every waiting figure, on a stack that is up (web at `base`, WORKERS workers)."""
    connection = Redis.from_url(redis_url)
    args = {"steps": steps, "step_seconds": step_s}
    warm_history(connection, args)
    found: dict[str, Any] = {"workers": WORKERS, "steps": steps, "step_s": step_s}
    found["expected_start"] = start_times(connection, args, jobs)
    found["time_left"] = time_left_from_start(connection, args)
    found["reads"] = read_rates(connection, base, args, duration_s)
    return found


def run(server, quick: bool, duration_s: float) -> dict[str, Any]:
    """`make bench`'s round: the Procfile's web and WORKERS worker processes on `server`."""
    web, base = procs.start_our_web(server.url)
    workers = procs.start_rq_workers(server.url, WORKERS)
    try:
        procs.wait_rq_workers(server.url, WORKERS)
        if quick:
            return measure(server.url, base, jobs=6, steps=4, step_s=0.2, duration_s=min(duration_s, 2.0))
        return measure(server.url, base, jobs=20, steps=10, step_s=0.3, duration_s=duration_s)
    finally:
        stop_all([*workers, web])
        server.flush()


def markdown(found: dict[str, Any]) -> str:
    """The figures as Markdown."""
    start, left, reads = found["expected_start"], found["time_left"], found["reads"]
    rel = start["relative"]
    lines = [
        f"\nWaiting (`python -m bench.waiting`), {found['workers']} work processes, steady demo jobs of "
        f"{found['steps']} steps of {found['step_s']} s:\n",
        "| figure | value | target |",
        "| --- | --- | --- |",
        f"| `expected_start_s` of {start['jobs']} jobs started at once: median / max error | "
        f"{_pct(rel['median'])} / {_pct(rel['max'])} ({start['judged']} judged, "
        f"{start['absolute_s']['median']} / {start['absolute_s']['max']} s) | |",
        f"| ... within 25% of the real wait | {_pct(rel['within_target'])} | |",
        f"| history-based `remaining_s` of a steady job from its first save: median / max error | "
        f"{_pct(left['from_first_save']['median'])} / {_pct(left['from_first_save']['max'])} "
        f"({left['saves']} saves, {left['null']} null) | median <= 20% |",
        f"| ... the saves before its own rate (history only): median | "
        f"{_pct(left['history_only']['median'])} | |",
        f"| `/status` of a job at position {reads['position']} vs a finished job's, req/s | "
        f"{reads['waiting']['ok_per_s']:.0f} vs {reads['finished']['ok_per_s']:.0f} (x{reads['ratio']}) | |",
    ]
    return "\n".join(lines) + "\n"


def _epoch_text(moment: str) -> float:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()


def _summary(values: list[float], target: float) -> dict[str, Any]:
    if not values:
        return {"median": None, "max": None, "within_target": None}
    return {
        "median": _round(statistics.median(values)),
        "max": _round(max(values)),
        "within_target": _round(sum(value <= target for value in values) / len(values)),
    }


def _round(value: float) -> float:
    return round(value, 3)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Start a server and the stack, measure, print the table, and return the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run, to check the harness")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each wrk run")
    args = parser.parse_args(argv)
    server = procs.RedisServer()
    try:
        found = run(server, args.quick, args.duration)
    finally:
        server.stop()
    print(markdown(found))
    return found


if __name__ == "__main__":
    main()
