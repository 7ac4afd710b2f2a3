"""Clients reading state: the status contract for one job."""

from flask import Blueprint, url_for

from jobs.snapshot import snapshot
from web.extensions import get_redis
from web.openapi import JSON, doc

bp = Blueprint("status_api", __name__)


@bp.get("/status/<job_id>")
@doc(
    {
        200: {"description": "the job's state now", "content": {JSON: {"schema": "Status"}}},
        404: "NotFound",
        503: "Unavailable",
    }
)
def status(job_id: str):
    """The job's contract payload; 404 JSON for an unknown, expired or malformed id."""
    return snapshot(job_id, get_redis())


def job_urls(job_id: str) -> dict[str, str]:
    """Where a client reads, streams and cancels one job: the URLs the 202 answer and the page share."""
    return {
        "status_url": url_for("status_api.status", job_id=job_id),
        "events_url": url_for("events.events", job_id=job_id),
        "cancel_url": url_for("jobs_api.cancel", job_id=job_id),
    }
