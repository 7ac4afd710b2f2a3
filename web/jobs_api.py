"""Clients starting work: POST answers 202 with the job's URLs (its own routes are in web/job_urls.py)."""

from typing import Any

from flask import Blueprint, current_app, request
from rq.job import Job
from werkzeug.exceptions import BadRequest

from jobs.registry import BadParams, catalog, start_job
from web.auth import remember
from web.config import queue_names
from web.extensions import get_redis
from web.job_urls import job_urls

bp = Blueprint("jobs_api", __name__)

START_FIELDS = ("name", "args", "queue", "delay_seconds")


@bp.post("/longtask")
def longtask():
    """Start the tutorial's demo job; an optional body {steps, step_seconds} sizes it."""
    job = start_job(get_redis(), "long_task", json_body(), **start_options())
    return accepted(job)


@bp.get("/api/jobs")
def list_jobs():
    """The jobs that can be started, with their parameters as JSON Schema, and the queues."""
    return {
        "jobs": [spec.describe() for spec in catalog()],
        "queues": queue_names(current_app.config["QUEUES"]),
    }


@bp.post("/api/jobs")
def start():
    """Start a registered job from {name, args, queue?, delay_seconds?}; honours Idempotency-Key."""
    body = start_body(json_body())
    options = start_options(queue=body.get("queue"), delay_s=body.get("delay_seconds", 0))
    return accepted(start_job(get_redis(), body["name"], body.get("args"), **options))


def json_body() -> Any:
    """The request's JSON body; None when there is none.

    Raises:
        BadRequest: the body is not valid JSON.
    """
    if not request.get_data(cache=True):
        return None
    payload = request.get_json(force=True, silent=True)
    if payload is None:
        raise BadRequest("the request body must be valid JSON (or empty)")
    return payload


def start_body(body: Any) -> dict[str, Any]:
    """Check the envelope of a `POST /api/jobs` body (the job's own arguments are the registry's).

    Raises:
        BadParams: not an object, an unknown field, or no string `name`.
    """
    if not isinstance(body, dict):
        raise BadParams("the body must be a JSON object: {name, args, queue?, delay_seconds?}")
    unknown = sorted(set(body) - set(START_FIELDS))
    if unknown:
        raise BadParams(f"unknown field {unknown[0]!r}; the fields are {', '.join(START_FIELDS)}")
    if not isinstance(body.get("name"), str):
        raise BadParams("name must be a string: one of the names GET /api/jobs lists")
    return body


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
