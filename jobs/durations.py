"""Job durations for /metrics: the worker side records each finished run in Redis, any web process reads.

A Prometheus histogram per (queue, outcome), kept as one Redis hash of plain counters, so every
web replica serves the same numbers and no worker needs an HTTP port of its own.
"""

import math

from redis import Redis
from redis.client import Pipeline

from jobs.keys import durations_key

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
