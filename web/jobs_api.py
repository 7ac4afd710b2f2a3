"""Clients starting work: POST answers 202 with the job's URLs (its own routes are in web/job_urls.py)."""

from typing import Any

from flask import Blueprint, current_app, request
from rq.job import Job
from werkzeug.exceptions import BadRequest

from jobs.params import check
from jobs.registry import BadParams, LongTaskArgs, StartRequest, catalog, start_job
from web.auth import remember
from web.config import queue_names
from web.extensions import get_redis
from web.job_urls import job_urls
from web.openapi import answer, doc

bp = Blueprint("jobs_api", __name__)

# What a start can answer; 202 carries Location.
START_ANSWERS = {
    202: "Started",
    400: "BadRequest",
    404: "NotFound",
    409: "Conflict",
    413: "TooLarge",
    503: "Unavailable",
}


@bp.post("/longtask")
@doc(START_ANSWERS, body=LongTaskArgs | None, body_required=False, parameters=("IdempotencyKey",))
def longtask():
    """Start the tutorial's demo job; an optional body {steps, step_seconds} sizes it."""
    job = start_job(get_redis(), "long_task", json_body(), **start_options())
    return accepted(job)


@bp.get("/api/jobs")
@doc({200: answer("the catalog", "JobCatalog")})
def list_jobs():
    """The jobs that can be started, with their parameters as JSON Schema, and the queues."""
    return {
        "jobs": [spec.describe() for spec in catalog()],
        "queues": queue_names(current_app.config["QUEUES"]),
    }


@bp.post("/api/jobs")
@doc(START_ANSWERS, body="StartRequest", parameters=("IdempotencyKey",))
def start():
    """Start a registered job from {name, args, queue?, delay_seconds?}; honours Idempotency-Key."""
    body = check(StartRequest, json_body(), "the body {name, args, queue?, delay_seconds?}")
    options = start_options(queue=body["queue"], delay_s=body["delay_seconds"])
    return accepted(start_job(get_redis(), body["name"], body["args"], **options))


def json_body() -> Any:
    """The request's JSON body; None when there is none (or it is `null`).

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
    names = queue_names(current_app.config["QUEUES"])
    if queue is not None and queue not in names:
        raise BadParams(f"queue must be one of {', '.join(names)}")
    return {
        "queue": queue,
        "delay_s": delay_s,
        "idempotency_key": request.headers.get("Idempotency-Key"),
        "max_queued": current_app.config["QUEUE_MAX_JOBS"],
    }


def accepted(job: Job) -> tuple[dict[str, str], int, dict[str, str]]:
    """The 202 answer for a started job: its id and URLs, the status URL also in `Location`.

    The job joins this browser's list (a session cookie), so the page redraws it on reload.
    """
    body = {"id": job.id, **job_urls(job.id)}
    remember(job.id)
    return body, 202, {"Location": body["status_url"]}
