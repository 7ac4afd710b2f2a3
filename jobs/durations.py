"""Job durations: the worker side records each finished run in Redis, any web process reads.

For /metrics, a Prometheus histogram per (queue, outcome), kept as one Redis hash of plain
counters, so every web replica serves the same numbers and no worker needs an HTTP port of its
own. For estimates, a short history of each job name's successful runs (`record_run`), from
which readers work out a job's usual duration (`usual_s`).
"""

import math
import re

from redis import Redis
from redis.client import Pipeline

from jobs.keys import durations_key, history_key

# Upper bounds in seconds, the last one +Inf: jobs here run from milliseconds to ten minutes.
BUCKETS_S = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, math.inf)


def count_duration(pipe: Pipeline, queue: str, outcome: str, seconds: float) -> None:
    """Queue on `pipe` the counts of one run of `seconds` (its bucket, the count, the sum)."""
    bucket = next(bound for bound in BUCKETS_S if seconds <= bound)
    prefix = f"{queue}|{outcome}"
    pipe.hincrby(durations_key(), f"{prefix}|le|{bucket}", 1)
    pipe.hincrby(durations_key(), f"{prefix}|count", 1)
    pipe.hincrbyfloat(durations_key(), f"{prefix}|sum", seconds)


def read_durations(connection: Redis) -> dict[tuple[str, str], dict]:
    """Every histogram: {(queue, outcome): {"buckets": [(bound, cumulative count)...], "count", "sum"}}."""
    raw = {key.decode(): value.decode() for key, value in connection.hgetall(durations_key()).items()}
    series: dict[tuple[str, str], dict] = {}
    for field, value in raw.items():
        queue, outcome, kind, *rest = field.split("|")
        entry = series.setdefault((queue, outcome), {"per_bucket": {}, "count": 0, "sum": 0.0})
        if kind == "le":
            entry["per_bucket"][float(rest[0])] = int(value)
        elif kind == "count":
            entry["count"] = int(value)
        elif kind == "sum":
            entry["sum"] = float(value)
    for entry in series.values():
        running, buckets = 0, []
        for bound in BUCKETS_S:
            running += entry["per_bucket"].get(bound, 0)
            buckets.append((bound, running))
        entry["buckets"] = buckets
        del entry["per_bucket"]
    return series


# The usual duration of a job name: its last HISTORY_RUNS successful runs, each in seconds per unit of
# the job's size (`jobs.registry.JobSpec.size`; 1 for a job without one), newest first.
HISTORY_RUNS = 20
# A job's name is recorded only when it looks like one of the catalog's (RQ's description of a job
# enqueued by call, arguments included, is not a name).
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def record_run(pipe: Pipeline, name: str | None, seconds: float, size: float | None) -> None:
    """Queue on `pipe` one successful run of `name` that took `seconds` for a job of `size` units.

    Nothing is recorded for a job without a catalog-like name, or of a size of 0 (nothing to scale by).
    """
    size = 1.0 if size is None else float(size)
    if not name or not _NAME.fullmatch(name) or size <= 0:
        return
    pipe.lpush(history_key(name), f"{seconds / size:.6g}")
    pipe.ltrim(history_key(name), 0, HISTORY_RUNS - 1)


def read_history(connection: Redis, name: str) -> list[float]:
    """The recorded seconds per unit of a job name's latest runs, newest first."""
    return [float(value) for value in connection.lrange(history_key(name), 0, -1)]


def usual_s(history: list[float], size: float | None) -> float | None:
    """The usual duration of a job of `size` units (None: 1): the median of its name's history times
    its size; None without history."""
    if not history:
        return None
    ordered = sorted(history)
    middle = len(ordered) // 2
    per_unit = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return round(per_unit * (1.0 if size is None else float(size)), 3)
