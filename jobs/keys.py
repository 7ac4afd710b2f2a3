"""Every Redis key and pub/sub channel the product owns, under one prefix; one function each.

RQ's own keys (`rq:job:<id>`, its queues and registries) are RQ's; nothing here shadows them.
"""

import hashlib

PREFIX = "rq-progress"


def channel_for(job_id: str) -> str:
    """The pub/sub channel that carries one job's payloads (`channel_for("*")` is the pattern for all)."""
    return f"{PREFIX}:events:{job_id}"


def stop_key(job_id: str) -> str:
    """The key that holds a request to stop one job."""
    return f"{PREFIX}:stop:{job_id}"


def idempotency_key(key: str) -> str:
    """Where one Idempotency-Key's claim lives (hashed: the header is caller-controlled)."""
    return f"{PREFIX}:idempotency:{hashlib.sha256(key.encode()).hexdigest()}"


def durations_key() -> str:
    """The hash that holds every job-duration counter for /metrics."""
    return f"{PREFIX}:metrics:job-durations"


def history_key(name: str) -> str:
    """The list of a job name's latest successful run times, in seconds per unit of its size."""
    return f"{PREFIX}:history:{name}"


def line_channel(queue_name: str) -> str:
    """The pub/sub channel that says one queue's line moved: a job of it started, ended or was canceled
    (`line_channel("*")` is the pattern for all)."""
    return f"{PREFIX}:line:{queue_name}"


def lost_job_lock_key() -> str:
    """The lock that lets one web process at a time check for lost jobs."""
    return f"{PREFIX}:lost-job-check"


def replication_probe_channel() -> str:
    """A channel nobody listens to: a start publishes there so that WAIT has a write to wait for."""
    return f"{PREFIX}:replication-probe"


def log_key(job_id: str) -> str:
    """The Redis Stream that holds one job's log lines."""
    return f"{PREFIX}:log:{job_id}"


def log_channel_for(job_id: str) -> str:
    """The pub/sub channel that carries one job's new log lines (`log_channel_for("*")` for all)."""
    return f"{PREFIX}:logs:{job_id}"


def token_key(digest: str) -> str:
    """The hash that holds one API token's name, scopes and creation time, by its secret's SHA-256."""
    return f"{PREFIX}:token:{digest}"


def token_index_key() -> str:
    """The hash from each API token's name to its digest (for list and revoke)."""
    return f"{PREFIX}:tokens"


def token_last_used_key() -> str:
    """The sorted set of API token digests, scored by when each was last used (0: never)."""
    return f"{PREFIX}:tokens:last-used"


def rate_limit_prefix() -> str:
    """The prefix of the rate limiter's counters (Flask-Limiter names the rest)."""
    return f"{PREFIX}:rate-limit"


def wake_channel(queue_name: str) -> str:
    """The pub/sub channel an enqueue on one queue publishes to, waking the workers idle on it."""
    return f"{PREFIX}:wake:{queue_name}"


def stranded_seen_key(queue_name: str) -> str:
    """The hash of jobs seen stuck in one queue's intermediate list, each with when it was first seen."""
    return f"{PREFIX}:stranded-seen:{queue_name}"


def ended_key(execution_id: str) -> str:
    """The marker of an execution whose end was written (`jobs.outage.end_once_script`)."""
    return f"{PREFIX}:ended:{execution_id}"


def rows_key(owner: str) -> str:
    """The sorted set of the jobs and groups one owner (a browser's session) started, by start time."""
    return f"{PREFIX}:rows:{owner}"


def rows_channel(owner: str) -> str:
    """The pub/sub channel that announces each job or group one owner starts (`rows_channel("*")`: all)."""
    return f"{PREFIX}:new-rows:{owner}"
