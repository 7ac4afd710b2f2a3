"""Clients reading state: the status contract for one job."""

from flask import Blueprint

from jobs.snapshot import snapshot
from web.extensions import get_redis

bp = Blueprint("status_api", __name__)


@bp.get("/status/<job_id>")
def status(job_id: str):
    """The job's contract payload; 404 JSON for an unknown, expired or malformed id."""
    return snapshot(job_id, get_redis())
