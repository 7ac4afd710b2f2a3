"""The catalog of jobs that may be started over HTTP, and the one way to start them.

A job is startable only by being registered here (`register(JobSpec(...))`, at the bottom of
this module) with its parameters and bounds, queue, timeout, result TTL, retry policy and
whether anonymous callers may start it (by default they may not: a token with its scope must);
HTTP never enqueues an arbitrary dotted path. (Not to be confused with `rq.registry`, RQ's
started/finished/failed sets.)
"""

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Any

from pydantic import Field, model_validator
from redis import Redis
from rq import Queue
from rq.job import Job

from jobs import idempotency
from jobs.admission import FULL, REPLAY, enqueue_admitted
from jobs.callbacks import CALLBACKS, initial_meta
from jobs.contract import DEFAULT_STALL_AFTER_S
from jobs.demo import RANDOM_STEPS
from jobs.owned import JOB, record_start
from jobs.params import JSON_INTEGER, Params, RetryPolicy, check, json_schema, rule_broken

# BadParams is raised through this module's start_job: callers import it from here.
from jobs.params import BadParams as BadParams
from jobs.worker.dequeue import ReliableQueue

log = logging.getLogger(__name__)

# The longest delay a start may ask for: the idempotency window.
MAX_DELAY_S = 24 * 60 * 60
QUEUE_FULL_RETRY_AFTER_S = 5


class UnknownJob(LookupError):
    """No job is registered under that name."""


class QueueFull(Exception):
    """The queue already holds its configured maximum of waiting jobs; nothing was enqueued."""

    retry_after_s = QUEUE_FULL_RETRY_AFTER_S


class NoParams(Params):
    """No arguments."""


class StartOptions(Params):
    """How a start is scheduled, beside the job's own arguments."""

    delay_seconds: float = Field(
        0, ge=0, le=MAX_DELAY_S, description="start no sooner than this many seconds from now"
    )


class StartRequest(StartOptions):
    """The body of `POST /api/jobs`; `args` are checked by the named job's own parameters."""

    name: str = Field(description="one of the names GET /api/jobs lists")
    args: Any = Field(None, description="the job's arguments (its parameters' JSON Schema)")
    queue: str | None = Field(None, description="one of the configured queues; default: the job's own")


@dataclass(frozen=True)
class JobSpec:
    """A registered job: where its function lives, its parameters, and how it may be started."""

    name: str
    func: str
    params: type[Params] = NoParams
    queue: str = "default"
    timeout_s: int = 180
    result_ttl_s: int = 500
    retry: RetryPolicy | None = None
    # Seconds a running job may go without saving progress before it is reported stalled.
    stall_after_s: int = DEFAULT_STALL_AFTER_S
    description: str = ""
    # Whether a caller without a token may start it; otherwise a token with its scope must.
    anonymous: bool = False
    # The job's size in units of work from its arguments, when they set it: its usual duration is
    # kept per unit (`jobs.durations`), so a job twice the size is expected to take twice as long.
    size: Callable[[dict[str, Any]], float] | None = None

    def validate(self, args: Any) -> dict[str, Any]:
        """Return the full argument dict (defaults filled in) or raise BadParams naming the field."""
        return check(self.params, args)

    def describe(self) -> dict[str, Any]:
        """What a client needs to start this job: its parameters as JSON Schema, and its policies."""
        retry = self.retry and {"max": self.retry.max, "intervals_s": list(self.retry.intervals_s)}
        return {
            "name": self.name,
            "description": self.description,
            "parameters": json_schema(self.params),
            "queue": self.queue,
            "timeout_s": self.timeout_s,
            "result_ttl_s": self.result_ttl_s,
            "retry": retry,
            "stall_after_s": self.stall_after_s,
            "anonymous": self.anonymous,
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
    owner: str | None = None,
    remember: bool = False,
) -> Job:
    """Validate arguments and enqueue a registered job by dotted path, with progress callbacks.

    Args:
        connection: the Redis client to enqueue with.
        name: the job's public name.
        args: its arguments as a JSON object (None means none).
        queue: a queue name overriding the job's own.
        delay_s: start no sooner than this many seconds from now (RQ's scheduler).
        idempotency_key: a caller's key; the same key within a day returns the same job.
        max_queued: refuse when the queue already holds this many waiting jobs (queued plus
            scheduled), checked atomically with the enqueue.
        owner: who starts it (recorded in its meta; only they may cancel it over HTTP).
        remember: also record the job among the owner's rows, for a browser's stream (`jobs.owned`).

    Raises:
        UnknownJob: nothing is registered under that name.
        BadParams: the arguments or options do not fit.
        QueueFull: the queue holds `max_queued` jobs or more; nothing was enqueued.
        idempotency.IdempotencyConflict: the key was used for a different request.
    """
    spec = get_spec(name)
    kwargs = spec.validate(args if args is not None else {})
    delay_s = check(StartOptions, {"delay_seconds": delay_s})["delay_seconds"]
    target = ReliableQueue(queue or spec.queue, connection=connection)
    job = new_job(target, spec, kwargs, owner)
    claim = fingerprint = None
    if idempotency_key is not None:
        request = {"name": name, "args": kwargs, "queue": target.name, "delay_s": delay_s}
        fingerprint = idempotency.fingerprint(request)
        claim = idempotency.claim(idempotency_key, fingerprint, job.id)
    at = datetime.now(UTC) + timedelta(seconds=delay_s) if delay_s else None
    also = partial(record_start, owner=owner, kind=JOB, row_id=job.id) if remember and owner else None
    admission = enqueue_admitted(target, job, at=at, max_queued=max_queued, claim=claim, also=also)
    if admission.outcome == REPLAY:
        earlier = idempotency.earlier_job_id(admission.earlier, fingerprint)
        log.info("job %s returned again for its idempotency key", earlier)
        return Job(earlier, connection=connection)
    if admission.outcome == FULL:
        raise QueueFull(f"queue {target.name!r} is full ({max_queued} jobs waiting); try again later")
    log.info(
        "job %s enqueued: %s (%s) on %s%s",
        job.id,
        spec.name,
        spec.func,
        job.origin,
        f" in {delay_s:g} s" if delay_s else "",
    )
    return job


def new_job(target: Queue, spec: JobSpec, kwargs: dict[str, Any], owner: str | None = None) -> Job:
    """A job of `spec` built for `target` (not yet in Redis), with its policies and our callbacks, and
    its size in its meta (its name's history is kept per unit of it: `jobs.durations`).

    Args:
        owner: who starts it (recorded in its meta; only they may cancel it over HTTP).
    """
    size = spec.size(kwargs) if spec.size is not None else None
    return target.create_job(
        spec.func,
        kwargs=kwargs,
        job_id=uuid.uuid4().hex,
        timeout=spec.timeout_s,
        result_ttl=spec.result_ttl_s,
        retry=spec.retry.to_rq() if spec.retry else None,
        meta=initial_meta(spec.retry.max if spec.retry else None, owner, spec.stall_after_s, size=size),
        # RQ would describe the job by its call, arguments included, and rq-dashboard shows the
        # description unescaped: a caller's text must never get there.
        description=spec.name,
        **CALLBACKS,
    )


# The tutorial's demo: what POST /longtask starts, and the page's "Start 3 together" too.
DEMO_JOB = "long_task"
DEMO_MAX_S = 600


class LongTaskArgs(Params):
    """The demo's size. Also, beyond what JSON Schema can say: steps * step_seconds must be at most
    600 (10 minutes), counting 50 steps when `steps` is absent; the server refuses more with a 400."""

    steps: Annotated[int, Field(ge=1, le=1000), JSON_INTEGER] | None = Field(
        None, description="steps; random {} to {} when absent".format(*RANDOM_STEPS)
    )
    step_seconds: float = Field(1.0, ge=0, le=10, description="seconds each step takes")

    @model_validator(mode="after")
    def _at_most_ten_minutes(self) -> "LongTaskArgs":
        if demo_duration_s(self.steps, self.step_seconds) > DEMO_MAX_S:
            raise rule_broken(f"steps * step_seconds must be at most {DEMO_MAX_S} (10 minutes)")
        return self


def demo_duration_s(steps: int | None, step_seconds: float) -> float:
    """The longest the demo may run with these arguments."""
    return (steps if steps is not None else RANDOM_STEPS[1]) * step_seconds


def demo_size(kwargs: dict[str, Any]) -> float:
    """The demo's size: the seconds its steps sleep (a random count counts as the middle of its range)."""
    steps = kwargs.get("steps")
    return (steps if steps is not None else sum(RANDOM_STEPS) / 2) * kwargs.get("step_seconds", 1.0)


register(
    JobSpec(
        name=DEMO_JOB,
        func="jobs.demo.long_task",
        description="The tutorial's demo: counts steps with a changing status message; returns 42.",
        params=LongTaskArgs,
        timeout_s=660,
        anonymous=True,
        size=demo_size,
    )
)

# One address, without the characters that would let it smuggle in a second header or recipient:
# RFC 5322 atext and dots, then a domain of letters, digits, dots and hyphens (ASCII, see jobs/params.py).
EMAIL_PATTERN = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+$"
Address = Annotated[str, Field(pattern=EMAIL_PATTERN)]


class SendEmailArgs(Params):
    """One plain-text message to each recipient."""

    to: list[Address] = Field(min_length=1, max_length=100, description="recipients")
    subject: str = Field(min_length=1, max_length=200, pattern=r"^[^\r\n]*$", description="one line")
    body: str = Field("", max_length=20_000, description="plain text")


register(
    JobSpec(
        name="send_email",
        func="jobs.mail.send_email",
        description="Send one plain-text email to each recipient through SMTP_URL, reporting each.",
        params=SendEmailArgs,
        queue="default",
        timeout_s=300,
        result_ttl_s=3600,
        # A retry resumes after the last recipient reported as sent (at least once, never skipped).
        retry=RetryPolicy(max=3, intervals_s=(10, 30, 60)),
    )
)
