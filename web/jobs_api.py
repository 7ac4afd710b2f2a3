"""Clients starting and stopping work: POST answers 202 with the job's URLs; cancel stops it."""

from typing import Any

from flask import Blueprint, request, url_for
from rq.job import Job
from werkzeug.exceptions import BadRequest

from jobs.control import JobAlreadyEnded, cancel_job
from jobs.registry import start_job
from web.errors import error_response
from web.extensions import get_redis
from web.pages import remember

bp = Blueprint("jobs_api", __name__)


@bp.post("/longtask")
def longtask():
    """Start the tutorial's demo job; an optional body {steps, step_seconds} sizes it."""
    job = start_job(get_redis(), "long_task", json_body())
    return accepted(job)


@bp.post("/status/<job_id>/cancel")
def cancel(job_id: str):
    """Cancel a waiting job (200) or ask its worker to stop a running one (202); 409 JSON if it has ended."""
    try:
        outcome = cancel_job(get_redis(), job_id)
    except JobAlreadyEnded as exc:
        return error_response(409, str(exc))
    return outcome.payload, 200 if outcome.done else 202


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


def accepted(job: Job) -> tuple[dict[str, str], int, dict[str, str]]:
    """The 202 answer for a started job: its id and URLs, the status URL also in `Location`.

    The job joins this browser's list (a session cookie), so the page redraws it on reload.
    """
    status_url = url_for("status_api.status", job_id=job.id)
    body = {
        "id": job.id,
        "status_url": status_url,
        "events_url": url_for("events.events", job_id=job.id),
        "cancel_url": url_for("jobs_api.cancel", job_id=job.id),
    }
    remember(job.id)
    return body, 202, {"Location": status_url}
