"""Clients starting work: 202 with the URLs of the job (web/job_urls.py) or group (web/group_urls.py)."""

from typing import Any

from flask import Blueprint, current_app, request
from rq.job import Job
from werkzeug.exceptions import BadRequest

from jobs.groups import GroupRequest, start_group
from jobs.params import check
from jobs.registry import (
    DEMO_JOB,
    BadParams,
    JobSpec,
    LongTaskArgs,
    StartRequest,
    UnknownJob,
    catalog,
    get_spec,
    start_job,
)
from web.auth import (
    REMEMBERED_GROUPS,
    REMEMBERED_JOBS,
    Caller,
    current_caller,
    has_session_cookie,
    require_scope,
)
from web.config import queue_names
from web.extensions import get_redis, get_replica_ack
from web.group_urls import group_urls
from web.job_urls import job_urls
from web.openapi_doc import OPTIONAL_BEARER, answer, doc
from web.tokens import START_ANY, start_scope

bp = Blueprint("jobs_api", __name__)

# What a start can answer; 202 carries Location.
START_ANSWERS = {
    202: "Started",
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "TooLarge",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
    503: "Unavailable",
}

# A group has no Idempotency-Key (no 409); its 202 lists its jobs.
GROUP_START_ANSWERS = {
    **{code: name for code, name in START_ANSWERS.items() if code != 409},
    202: "GroupStarted",
}


@bp.post("/longtask")
@doc(
    START_ANSWERS,
    body=LongTaskArgs | None,
    body_required=False,
    parameters=("IdempotencyKey",),
    security=OPTIONAL_BEARER,
)
def longtask():
    """Start the tutorial's demo job; an optional body {steps, step_seconds} sizes it."""
    return begin(DEMO_JOB, json_body())


@bp.get("/api/jobs")
@doc({200: answer("the catalog", "JobCatalog")})
def list_jobs():
    """The jobs that can be started, with their parameters as JSON Schema, and the queues."""
    return {
        "jobs": [{**spec.describe(), "scopes": [start_scope(spec.name), START_ANY]} for spec in catalog()],
        "queues": queue_names(current_app.config["QUEUES"]),
    }


@bp.post("/api/jobs")
@doc(START_ANSWERS, body="StartRequest", parameters=("IdempotencyKey",), security=OPTIONAL_BEARER)
def start():
    """Start a registered job from {name, args, queue?, delay_seconds?}; honours Idempotency-Key."""
    body = check(StartRequest, json_body(), "the body {name, args, queue?, delay_seconds?}")
    return begin(body["name"], body["args"], queue=body["queue"], delay_s=body["delay_seconds"])


def begin(name: str, args: Any, queue: Any = None, delay_s: Any = 0):
    """Start a registered job for the caller, if it may: anonymous jobs for anyone, others with a token.

    Raises:
        UnknownJob: no job of that name (404).
        Unauthorized, Forbidden: the job needs a token with its scope (401, 403).
    """
    spec = get_spec(name)
    caller = may_start([spec])
    options = start_options(queue=queue, delay_s=delay_s)
    job = start_job(get_redis(), spec.name, args, owner=caller.owner, remember=keeps_rows(caller), **options)
    return accepted(job)


@bp.post("/api/groups")
@doc(GROUP_START_ANSWERS, body="GroupRequest", security=OPTIONAL_BEARER)
def start_together():
    """Start 1 to 100 registered jobs as one group, each checked as POST /api/jobs checks it: all or none."""
    body = check(GroupRequest, json_body(), "the body {jobs: [{name, args, queue?}, ...]}")
    specs = []
    for index, item in enumerate(body["jobs"]):
        check_queue(item["queue"], f"jobs[{index}].queue")
        try:
            specs.append(get_spec(item["name"]))
        except UnknownJob as exc:
            raise UnknownJob(f"jobs[{index}]: {exc}") from None
    caller = may_start(specs)
    max_queued = current_app.config["QUEUE_MAX_JOBS"]
    group_id, jobs = start_group(
        get_redis(), body["jobs"], owner=caller.owner, max_queued=max_queued, remember=keeps_rows(caller)
    )
    get_replica_ack().confirm(get_redis(), group_id)  # with a replica attached, 202 once it has them
    started = {
        "id": group_id,
        **group_urls(group_id),
        "jobs": [{"id": job.id, **job_urls(job.id)} for job in jobs],
    }
    if has_session_cookie():
        REMEMBERED_GROUPS.add(group_id)
    return started, 202, {"Location": started["status_url"]}


def keeps_rows(caller: Caller) -> bool:
    """Whether a start is recorded among its browser's rows, which the browser's open stream adds at
    once (`jobs.owned`): a browser session's, not a token's."""
    return caller.session_id is not None


def may_start(specs: list[JobSpec]) -> Caller:
    """The caller, if it may start every one of these jobs: anonymous ones anyone, others with a token.

    Raises:
        Unauthorized, Forbidden: a job needs a token with its scope (401, 403).
    """
    caller = current_caller()
    for name in sorted({spec.name for spec in specs if not spec.anonymous}):
        caller = require_scope(start_scope(name))
    return caller


def json_body() -> Any:
    """The JSON body; None when there is none, or it is `null` (web.guards refuses other media types).

    Raises:
        BadRequest: the body is not valid JSON.
    """
    data = request.get_data(cache=True)
    if not data:
        return None
    try:
        # Not request.get_json(), which answers None for both `null` and malformed JSON.
        return current_app.json.loads(data)
    except ValueError:
        raise BadRequest("the request body must be valid JSON (or empty)") from None


def start_options(queue: Any = None, delay_s: Any = 0) -> dict[str, Any]:
    """Keyword arguments for `start_job` from the request: queue, delay, idempotency key, backpressure.

    Raises:
        BadParams: the queue is not one of the configured queues.
    """
    check_queue(queue)
    return {
        "queue": queue,
        "delay_s": delay_s,
        "idempotency_key": request.headers.get("Idempotency-Key"),
        "max_queued": current_app.config["QUEUE_MAX_JOBS"],
    }


def check_queue(queue: Any, field: str = "queue") -> None:
    """Go on only for no queue (the job's own) or one of the configured queues.

    Raises:
        BadParams: another queue; the message names the field.
    """
    names = queue_names(current_app.config["QUEUES"])
    if queue is not None and queue not in names:
        raise BadParams(f"{field} must be one of {', '.join(names)}")


def accepted(job: Job) -> tuple[dict[str, str], int, dict[str, str]]:
    """The 202 answer for a started job: its id and URLs, the status URL also in `Location`.

    With a replica attached, it waits until one has the job first (NotReplicated: 503). The job
    joins this browser's list (its session cookie), so the page redraws it on reload; a client
    that sent no cookie gets none.
    """
    get_replica_ack().confirm(get_redis(), job.id)
    body = {"id": job.id, **job_urls(job.id)}
    if has_session_cookie():
        REMEMBERED_JOBS.add(job.id)
    return body, 202, {"Location": body["status_url"]}
