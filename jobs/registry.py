"""The catalog of jobs that may be started over HTTP, and the one way to start them.

A job is startable only by being registered here (`register(JobSpec(...))`, at the bottom of
this module) with its parameters and bounds, queue, timeout, result TTL and retry policy;
HTTP never enqueues an arbitrary dotted path. (Not to be confused with `rq.registry`, RQ's
started/finished/failed sets.)
"""

import logging
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from redis import Redis
from rq import Callback, Queue, Retry
from rq.job import Job

from jobs import idempotency
from jobs.progress import initial_meta

log = logging.getLogger(__name__)

REQUIRED = object()
# The longest delay a start may ask for: the idempotency window.
MAX_DELAY_S = 24 * 60 * 60
QUEUE_FULL_RETRY_AFTER_S = 5


class UnknownJob(LookupError):
    """No job is registered under that name."""


class BadParams(ValueError):
    """The arguments do not fit the job's declared parameters."""


class QueueFull(Exception):
    """The queue already holds its configured maximum of waiting jobs; nothing was enqueued."""

    retry_after_s = QUEUE_FULL_RETRY_AFTER_S


@dataclass(frozen=True)
class Param:
    """One declared job parameter: its type, bounds and default."""

    type: type
    default: Any = REQUIRED
    min: float | None = None
    max: float | None = None
    description: str = ""
    # For lists: the type of each item. Bounds of strings and lists apply to their length.
    items: type | None = None
    pattern: str | None = None

    def check(self, name: str, value: Any) -> Any:
        """Return `value` if it fits, else raise BadParams naming the parameter."""
        if value is None and self.default is None:
            return None
        if not _is_instance(value, self.type):
            raise BadParams(f"{name} must be {_type_name(self.type)}, not {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise BadParams(f"{name} must be a finite number")
        if isinstance(value, str | list):
            _check_length(
                name, len(value), self.min, self.max, "item" if isinstance(value, list) else "character"
            )
        else:
            _check_bounds(name, value, self.min, self.max)
        if isinstance(value, list) and self.items is not None:
            for index, item in enumerate(value):
                Param(self.items, pattern=self.pattern).check(f"{name}[{index}]", item)
        elif isinstance(value, str) and self.pattern and not re.fullmatch(self.pattern, value):
            raise BadParams(f"{name} is not valid: {value[:80]!r}")
        return value

    def schema(self) -> dict[str, Any]:
        """The parameter as a JSON Schema (for `GET /api/jobs` and the OpenAPI document)."""
        schema: dict[str, Any] = {"type": _JSON_TYPES[self.type]}
        if self.type in (str, list):
            names = ("minLength", "maxLength") if self.type is str else ("minItems", "maxItems")
        else:
            names = ("minimum", "maximum")
        for bound_name, bound in zip(names, (self.min, self.max), strict=True):
            if bound is not None:
                schema[bound_name] = bound
        if self.items is not None:
            schema["items"] = {"type": _JSON_TYPES[self.items]}
            if self.pattern:
                schema["items"]["pattern"] = self.pattern
        elif self.pattern:
            schema["pattern"] = self.pattern
        if self.default is not REQUIRED:
            schema["default"] = self.default
            if self.default is None:
                schema["type"] = [schema["type"], "null"]
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True)
class RetryPolicy:
    """How RQ retries a failed job: at most `max` more attempts, waiting `intervals_s` between."""

    max: int
    intervals_s: tuple[int, ...] = (0,)

    def to_rq(self) -> Retry:
        """RQ's own Retry (its scheduler runs the waits; workers need --with-scheduler)."""
        return Retry(max=self.max, interval=list(self.intervals_s))


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
        "job %s enqueued: %s on %s%s", job.id, spec.name, job.origin, f" in {delay_s:g} s" if delay_s else ""
    )
    return job


def _enqueue(target: Queue, spec: JobSpec, kwargs: dict[str, Any], job_id: str, delay_s: float) -> Job:
    options = {
        "kwargs": kwargs,
        "job_id": job_id,
        "job_timeout": spec.timeout_s,
        "result_ttl": spec.result_ttl_s,
        "retry": spec.retry.to_rq() if spec.retry else None,
        "meta": initial_meta(retry_max=spec.retry.max if spec.retry else None),
        "on_success": Callback("jobs.progress.on_success"),
        "on_failure": Callback("jobs.progress.on_failure"),
        "on_stopped": Callback("jobs.progress.on_stopped"),
    }
    if delay_s:
        return target.enqueue_in(timedelta(seconds=delay_s), spec.func, **options)
    return target.enqueue(spec.func, **options)


def _check_bounds(name: str, value: float, low: float | None, high: float | None) -> None:
    if low is not None and value < low:
        raise BadParams(f"{name} must be at least {low:g}")
    if high is not None and value > high:
        raise BadParams(f"{name} must be at most {high:g}")


def _check_length(name: str, length: int, low: float | None, high: float | None, unit: str) -> None:
    if low is not None and length < low:
        raise BadParams(f"{name} must have at least {low:g} {unit}{'s' if low != 1 else ''}")
    if high is not None and length > high:
        raise BadParams(f"{name} must have at most {high:g} {unit}{'s' if high != 1 else ''}")


def _is_instance(value: Any, expected: type) -> bool:
    if isinstance(value, bool) and expected is not bool:
        return False
    if expected is float:
        return isinstance(value, int | float)
    return isinstance(value, expected)


def _type_name(expected: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list"}.get(
        expected, expected.__name__
    )


_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array"}


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
