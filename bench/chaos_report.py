"""`make chaos`'s accounting: what became of every job, as counts, a JSON file and a docs table.

Per accepted job, read from Redis at the end and from the workers' own logs:
- started: a worker took it: Redis holds its start time, or a worker logged taking it (RQ's
  "Worker w: queue: ... (id)" line);
- succeeded, failed (by the status text's first words: "worker lost", an error message...);
- stuck: Redis knows the job but it never ended (queued in no queue, started for ever...);
- lost: the 202 named a job that Redis does not know at the end;
- failed, by the fault that caused it (`attribute`): each failed job's worker (its name in the job
  hash, the worker's pid from its log's start line) and run (start to end) are matched against
  the faults the run recorded with their times: its own worker SIGKILLed during its run, a work
  horse of that worker SIGKILLed then, else a Redis fault (restart or failover) overlapping its
  run; anything else is "unexplained". A job hit by both a kill of its own process and a Redis
  fault counts under the kill: the kill alone fails a job, a Redis fault alone must not;
- ran twice: workers logged taking it two or more times. It over-counts (a worker killed after
  logging the pop but before its horse started counts too) and can miss a take: a worker killed
  between marking the job started and logging it leaves no line (seen: 2 jobs in 1,000).
"""

import json
import re
from collections import Counter
from pathlib import Path

from redis import Redis
from rq.exceptions import NoSuchJobError

from jobs.snapshot import fetch_job, snapshot

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "chaos.json"
PAGE = ROOT / "docs" / "operations.md"
MARKERS = ("<!-- chaos:results:start (make chaos rewrites this part) -->", "<!-- chaos:results:end -->")
# A worker's "took this job" line: RQ's (and jobs.worker's) "Worker <name>: <queue>: <description> (<id>)".
TAKEN = re.compile(r"Worker \S+: .+ \(([0-9a-f]{32})\)\s*$")
# RQ's start line, naming a worker and its pid.
BORN = re.compile(r"Worker (\S+): started with PID (\d+)")
# How far a fault's recorded time may lie outside a job's run and still count (seconds).
SLACK_S = 1.0
CAUSES = ("worker SIGKILLed", "work horse SIGKILLed", "Redis fault", "unexplained")


def worker_pids(log_dir: Path) -> dict[str, int]:
    """Each worker's name and pid, from the start lines of every worker log of the run."""
    pids = {}
    for path in log_dir.glob("worker-*.log"):
        for match in BORN.finditer(path.read_text(errors="replace")):
            pids[match.group(1)] = int(match.group(2))
    return pids


def cause_of(run: tuple[float, float], worker_pid: int | None, events: list[dict]) -> str:
    """The fault that failed a job that ran from `run[0]` to `run[1]` (Unix times) on that worker.

    Args:
        events: the faults, each {"kind": "worker" | "horse" | "redis" | "web", "at": time} with
            "pid" (a worker's) for a worker, "worker_pid" for a horse, "until" for Redis.
    """
    began, ended = run[0] - SLACK_S, run[1] + SLACK_S
    during = [event for event in events if event["at"] <= ended and event.get("until", event["at"]) >= began]
    for kind, key, cause in (("worker", "pid", CAUSES[0]), ("horse", "worker_pid", CAUSES[1])):
        if worker_pid is not None and any(e["kind"] == kind and e.get(key) == worker_pid for e in during):
            return cause
    return CAUSES[2] if any(event["kind"] == "redis" for event in during) else CAUSES[3]


def attribute(
    client: Redis, ids: list[str], events: list[dict], pids: dict[str, int], unexplained: list | None = None
) -> Counter:
    """How many of these failed jobs each cause failed (`cause_of`); `unexplained` gets what is known
    of each job no fault explains (its id, worker, worker pid, run)."""
    causes: Counter = Counter()
    for job_id in ids:
        job = fetch_job(job_id, client)
        result = job.latest_result()
        ended = job.ended_at or (result.created_at if result is not None else None)
        began = job.started_at.timestamp() if job.started_at else float("-inf")
        run = (began, ended.timestamp() if ended else float("inf"))
        # The job's hash loses its worker's name when the worker saves the failure of a job its
        # horse started (its own copy of the job has none); the failure's result keeps it.
        worker = job.worker_name or (getattr(result, "worker_name", None) if result is not None else None)
        cause = cause_of(run, pids.get(worker or ""), events)
        causes[cause] += 1
        if cause == CAUSES[3] and unexplained is not None:
            unexplained.append([job_id, worker, pids.get(worker or ""), *run])
    return causes


def taken_counts(log_dir: Path) -> Counter:
    """How many times each job id was taken by a worker, from every worker log of the run."""
    counts: Counter = Counter()
    for path in log_dir.glob("worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if "Job OK" in line:
                continue
            match = TAKEN.search(line)
            if match:
                counts[match.group(1)] += 1
    return counts


def classify(
    client: Redis,
    ids: list[str],
    taken: Counter,
    events: list[dict] | None = None,
    pids: dict[str, int] | None = None,
) -> dict:
    """Counts per outcome, failures by cause (with `events`, see `attribute`), the ids of lost and
    stuck jobs."""
    outcome: Counter = Counter()
    reasons: Counter = Counter()
    lost, stuck, started, failed = [], [], 0, []
    for job_id in ids:
        try:
            job = fetch_job(job_id, client)
        except NoSuchJobError:
            lost.append(job_id)
            continue
        started += bool(taken[job_id] or job.started_at)
        payload = snapshot(job_id, client)
        if payload["state"] == "SUCCESS":
            outcome["succeeded"] += 1
        elif payload["state"] == "FAILURE":
            outcome["failed"] += 1
            failed.append(job_id)
            reasons[payload["status"].split(":")[0]] += 1
        else:
            stuck.append(job_id)
    counts = {
        "accepted": len(ids),
        "started": started,
        "succeeded": outcome["succeeded"],
        "failed": outcome["failed"],
        "failed_by_reason": dict(reasons.most_common()),
        "stuck": len(stuck),
        "lost": len(lost),
        "ran_twice": sum(1 for job_id in ids if taken[job_id] >= 2),
        "stuck_ids": stuck[:50],
        "lost_ids": lost[:50],
    }
    if events is not None:
        counts["unexplained"] = []
        counts["failed_by_cause"] = dict(attribute(client, failed, events, pids or {}, counts["unexplained"]))
        counts["faults_timed"] = events
    return counts


def save(result: dict, readme: bool) -> None:
    """Keep the result under its mode in bench/chaos.json, and the table in docs/operations.md."""
    runs = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs[result["mode"]] = result
    RESULTS.write_text(json.dumps(runs, indent=2) + "\n")
    if readme:
        text = PAGE.read_text()
        start, end = text.index(MARKERS[0]) + len(MARKERS[0]), text.index(MARKERS[1])
        table = "\n\n".join(render(runs[mode]) for mode in ("aof", "sentinel") if mode in runs)
        PAGE.write_text(text[:start] + "\n" + table + "\n" + text[end:])


def render(result: dict) -> str:
    """The run as a Markdown table with a line saying how it was made."""
    mode = {"aof": "one Redis with AOF", "sentinel": "Sentinel: primary, replica, 3 sentinels"}[
        result["mode"]
    ]
    faults = ", ".join(f"{name} x{count}" for name, count in sorted(result["faults"].items()))
    reasons = ", ".join(f"{reason}: {count}" for reason, count in result["failed_by_reason"].items()) or "-"
    rows = [
        ("accepted (202)", result["accepted"]),
        ("never accepted (gave up after 60 s of retries)", result["refused"]),
        ("started", result["started"]),
        ("succeeded", result["succeeded"]),
        (f"failed ({reasons})", result["failed"]),
        *(
            (f"failed, caused by: {cause}", result["failed_by_cause"].get(cause, 0))
            for cause in CAUSES
            if "failed_by_cause" in result
        ),
        ("stuck", result["stuck"]),
        ("lost", result["lost"]),
        ("ran twice (taken by two workers)", result["ran_twice"]),
    ]
    settings = result["settings"]
    head = (
        f"{result['when']}; {mode}; {settings['jobs']} jobs over {result['faults_s']:.0f} s, "
        f"{settings['workers']} workers (`{result.get('worker', '?')}`), {settings['webs']} web processes. "
        f"Faults: {faults}. "
        + (
            f"Every job had ended {result['settle_s']:.0f} s after the faults stopped."
            if not result["stuck"]
            else f"{result['stuck']} jobs had not ended {result['settle_s']:.0f} s after the faults stopped."
        )
    )
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"{head}\n\n| jobs | count |\n| --- | --- |\n{table}"
