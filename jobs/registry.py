"""The catalog of jobs that may be started over HTTP, and the one way to start them.

A job is startable only by being registered here with its parameters and bounds; HTTP
never enqueues an arbitrary dotted path. (Not to be confused with `rq.registry`, RQ's
started/finished/failed sets.)
"""

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from rq import Callback, Queue
from rq.job import Job

log = logging.getLogger(__name__)

REQUIRED = object()


class UnknownJob(LookupError):
    """No job is registered under that name."""


class BadParams(ValueError):
    """The arguments do not fit the job's declared parameters."""


@dataclass(frozen=True)
class Param:
    """One declared job parameter: its type, bounds and default."""

    type: type
    default: Any = REQUIRED
    min: float | None = None
    max: float | None = None
    description: str = ""

    def check(self, name: str, value: Any) -> Any:
        """Return `value` if it fits, else raise BadParams naming the parameter."""
        if value is None and self.default is None:
            return None
        if not _is_instance(value, self.type):
            raise BadParams(f"{name} must be {_type_name(self.type)}, not {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise BadParams(f"{name} must be a finite number")
        if self.min is not None and value < self.min:
            raise BadParams(f"{name} must be at least {self.min:g}")
        if self.max is not None and value > self.max:
            raise BadParams(f"{name} must be at most {self.max:g}")
        return value


@dataclass(frozen=True)
class JobSpec:
    """A registered job: where its function lives and how it may be started."""

    name: str
    func: str
    params: dict[str, Param] = field(default_factory=dict)
    queue: str = "default"
    timeout_s: int = 180
    result_ttl_s: int = 500
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


def start_job(connection: Redis, name: str, args: Any, *, queue: str | None = None) -> Job:
    """Validate arguments and enqueue a registered job by dotted path, with progress callbacks.

    Args:
        connection: the Redis client to enqueue with.
        name: the job's public name.
        args: its arguments as a JSON object (None means none).
        queue: a queue name overriding the job's own.

    Raises:
        UnknownJob: nothing is registered under that name.
        BadParams: the arguments do not fit its parameters.
    """
    spec = get_spec(name)
    kwargs = spec.validate(args if args is not None else {})
    job = Queue(queue or spec.queue, connection=connection).enqueue(
        spec.func,
        kwargs=kwargs,
        job_timeout=spec.timeout_s,
        result_ttl=spec.result_ttl_s,
        on_success=Callback("jobs.progress.on_success"),
        on_failure=Callback("jobs.progress.on_failure"),
        on_stopped=Callback("jobs.progress.on_stopped"),
    )
    log.info("job %s enqueued: %s (%s) on %s", job.id, spec.name, spec.func, job.origin)
    return job


def _is_instance(value: Any, expected: type) -> bool:
    if isinstance(value, bool) and expected is not bool:
        return False
    if expected is float:
        return isinstance(value, int | float)
    return isinstance(value, expected)


def _type_name(expected: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        expected, expected.__name__
    )


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
