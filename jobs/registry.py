"""The catalog of jobs that may be started over HTTP, and the one way to start them.

A job is startable only by being registered here (`register(JobSpec(...))`, at the bottom of
this module) with its parameters and bounds, queue, timeout, result TTL and retry policy;
HTTP never enqueues an arbitrary dotted path. (Not to be confused with `rq.registry`, RQ's
started/finished/failed sets.)
"""

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from redis import Redis
from rq import Queue
from rq.job import Job

from jobs import idempotency
from jobs.callbacks import CALLBACKS, initial_meta
from jobs.contract import DEFAULT_STALL_AFTER_S
from jobs.params import REQUIRED, BadParams, Param, RetryPolicy

log = logging.getLogger(__name__)

# The longest delay a start may ask for: the idempotency window.
MAX_DELAY_S = 24 * 60 * 60
QUEUE_FULL_RETRY_AFTER_S = 5


class UnknownJob(LookupError):
    """No job is registered under that name."""


class QueueFull(Exception):
    """The queue already holds its configured maximum of waiting jobs; nothing was enqueued."""

    retry_after_s = QUEUE_FULL_RETRY_AFTER_S


@dataclass(frozen=True)
class JobSpec:
    """A registered job: where its function lives and how it may be started."""

    name: str
    func: str
    params: dict[str, Param] = field(default_factory=dict)
    queue: str = "default"
    timeout_s: int = 180
    result_ttl_s: int = 500
    retry: RetryPolicy | None = None
    # Seconds a running job may go without saving progress before it is reported stalled.
    stall_after_s: int = DEFAULT_STALL_AFTER_S
    description: str = ""
    check: Callable[[dict[str, Any]], None] | None = None

    def validate(self, args: Any) -> dict[str, Any]:
        """Return the full argument dict (defaults filled in) or raise BadParams."""
        if not isinstance(args, dict):
            raise BadParams("arguments must be a JSON object")
        unknown = sorted(set(args) - set(self.params))
        if unknown:
            raise BadParams(f"unknown argument {unknown[0]!r} for job {self.name!r}")
        clean = {}
        for name, param in self.params.items():
            if name in args:
                clean[name] = param.check(name, args[name])
            elif param.default is REQUIRED:
                raise BadParams(f"missing argument {name!r} for job {self.name!r}")
            else:
                clean[name] = param.default
        if self.check is not None:
            self.check(clean)
        return clean

    def describe(self) -> dict[str, Any]:
        """What a client needs to start this job: its parameters as JSON Schema, and its policies."""
        retry = self.retry and {"max": self.retry.max, "intervals_s": list(self.retry.intervals_s)}
        return {
            "name": self.name,
            "description": self.description,
            "parameters": {
                "type": "object",
                "properties": {name: param.schema() for name, param in self.params.items()},
                "required": [name for name, param in self.params.items() if param.default is REQUIRED],
                "additionalProperties": False,
            },
            "queue": self.queue,
            "timeout_s": self.timeout_s,
            "result_ttl_s": self.result_ttl_s,
            "retry": retry,
            "stall_after_s": self.stall_after_s,
        }


CATALOG: dict[str, JobSpec] = {}


def register(spec: JobSpec) -> JobSpec:
    """Add a job to the catalog under its public name."""
    if spec.name in CATALOG:
        raise ValueError(f"job {spec.name!r} is already registered")
    CATALOG[spec.name] = spec
    return spec


def get_spec(name: str) -> JobSpec:
    """Look a job up by public name.

    Raises:
        UnknownJob: nothing is registered under that name.
    """
    try:
        return CATALOG[name]
    except (KeyError, TypeError):
        raise UnknownJob(f"no job named {name!r}; known jobs: {', '.join(sorted(CATALOG))}") from None


def catalog() -> list[JobSpec]:
    """Every registered job, by name."""
    return [CATALOG[name] for name in sorted(CATALOG)]


def start_job(
    connection: Redis,
    name: str,
    args: Any,
    *,
    queue: str | None = None,
    delay_s: float = 0,
    idempotency_key: str | None = None,
    max_queued: int | None = None,
) -> Job:
    """Validate arguments and enqueue a registered job by dotted path, with progress callbacks.

    Args:
        connection: the Redis client to enqueue with.
        name: the job's public name.
        args: its arguments as a JSON object (None means none).
        queue: a queue name overriding the job's own.
        delay_s: start no sooner than this many seconds from now (RQ's scheduler).
        idempotency_key: a caller's key; the same key within a day returns the same job.
        max_queued: refuse when the queue already holds this many waiting jobs.

    Raises:
        UnknownJob: nothing is registered under that name.
        BadParams: the arguments or options do not fit.
        QueueFull: the queue holds `max_queued` jobs or more; nothing was enqueued.
        idempotency.IdempotencyConflict: the key was used for a different request.
    """
    spec = get_spec(name)
    kwargs = spec.validate(args if args is not None else {})
    delay_s = Param(float, min=0, max=MAX_DELAY_S).check("delay_seconds", delay_s)
    target = Queue(queue or spec.queue, connection=connection)
    job_id = uuid.uuid4().hex
    if idempotency_key is not None:
        request = {"name": name, "args": kwargs, "queue": target.name, "delay_s": delay_s}
        earlier = idempotency.claim(connection, idempotency_key, idempotency.fingerprint(request), job_id)
        if earlier is not None:
            log.info("job %s returned again for its idempotency key", earlier)
            return Job(earlier, connection=connection)
    try:
        if max_queued is not None and target.count >= max_queued:
            raise QueueFull(f"queue {target.name!r} is full ({max_queued} jobs waiting); try again later")
        job = _enqueue(target, spec, kwargs, job_id, delay_s)
    except BaseException:
        if idempotency_key is not None:
            idempotency.release(connection, idempotency_key, job_id)
        raise
    log.info(
        "job %s enqueued: %s (%s) on %s%s",
        job.id,
        spec.name,
        spec.func,
        job.origin,
        f" in {delay_s:g} s" if delay_s else "",
    )
    return job


def _enqueue(target: Queue, spec: JobSpec, kwargs: dict[str, Any], job_id: str, delay_s: float) -> Job:
    options = {
        "kwargs": kwargs,
        "job_id": job_id,
        "job_timeout": spec.timeout_s,
        "result_ttl": spec.result_ttl_s,
        "retry": spec.retry.to_rq() if spec.retry else None,
        "meta": initial_meta(spec.retry.max if spec.retry else None, spec.stall_after_s),
        **CALLBACKS,
    }
    if delay_s:
        return target.enqueue_in(timedelta(seconds=delay_s), spec.func, **options)
    return target.enqueue(spec.func, **options)


def _check_demo_duration(args: dict[str, Any]) -> None:
    steps = args["steps"] if args["steps"] is not None else 50
    if steps * args["step_seconds"] > 600:
        raise BadParams("steps * step_seconds must be at most 600 (10 minutes)")


register(
    JobSpec(
        name="long_task",
        func="jobs.demo.long_task",
        description="The tutorial's demo: counts steps with a changing status message; returns 42.",
        params={
            "steps": Param(
                int, default=None, min=1, max=1000, description="steps; random 10 to 50 when absent"
            ),
            "step_seconds": Param(float, default=1.0, min=0, max=10, description="seconds each step takes"),
        },
        timeout_s=660,
        check=_check_demo_duration,
    )
)

# One address, without the characters that would let it smuggle in a second header or recipient.
EMAIL_PATTERN = r"[^@\s<>,;\"]+@[^@\s<>,;\"]+"

register(
    JobSpec(
        name="send_email",
        func="jobs.mail.send_email",
        description="Send one plain-text email to each recipient through SMTP_URL, reporting each.",
        params={
            "to": Param(list, items=str, min=1, max=100, pattern=EMAIL_PATTERN, description="recipients"),
            "subject": Param(str, min=1, max=200, pattern=r"[^\r\n]*", description="one line"),
            "body": Param(str, default="", max=20_000, description="plain text"),
        },
        queue="default",
        timeout_s=300,
        result_ttl_s=3600,
        # A retry resumes after the last recipient reported as sent (at least once, never skipped).
        retry=RetryPolicy(max=3, intervals_s=(10, 30, 60)),
    )
)
