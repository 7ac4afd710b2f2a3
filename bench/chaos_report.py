"""`make chaos`'s accounting: what became of every job, as counts, a JSON file and a docs table.

Per accepted job, read from Redis at the end and from the workers' own logs:
- started: a worker took it: Redis holds its start time, or a worker logged taking it (RQ's
  "Worker w: queue: ... (id)" line);
- succeeded, failed (by the status text's first words: "worker lost", an error message...);
- stuck: Redis knows the job but it never ended (queued in no queue, started for ever...);
- lost: the 202 named a job that Redis does not know at the end;
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


def classify(client: Redis, ids: list[str], taken: Counter) -> dict:
    """Counts per outcome, with the ids of lost and stuck jobs."""
    outcome: Counter = Counter()
    reasons: Counter = Counter()
    lost, stuck, started = [], [], 0
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
            reasons[payload["status"].split(":")[0]] += 1
        else:
            stuck.append(job_id)
    return {
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
