"""People: the page at `/`, and the list of jobs this browser started, kept in its signed session."""

import logging
from typing import Any

from flask import Blueprint, render_template, session
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.exceptions import NoSuchJobError

from jobs.snapshot import snapshot
from web.extensions import get_redis
from web.status_api import job_urls

log = logging.getLogger(__name__)

bp = Blueprint("pages", __name__)

SESSION_KEY = "job_ids"
# Enough rows for a page, few enough ids (36 characters each) to keep the cookie far below 4 KB.
MAX_REMEMBERED = 20


def remember(job_id: str) -> None:
    """Add a job to this browser's list, newest last, keeping the last MAX_REMEMBERED."""
    ids = [known for known in remembered() if known != job_id]
    session[SESSION_KEY] = [*ids, job_id][-MAX_REMEMBERED:]
    session.permanent = True


def remembered() -> list[str]:
    """The ids of the jobs this browser started, oldest first."""
    ids = session.get(SESSION_KEY)
    return [job_id for job_id in ids if isinstance(job_id, str)] if isinstance(ids, list) else []


@bp.get("/")
def index():
    """The page: a start button and a row for every job this browser started that Redis still holds."""
    try:
        rows = job_rows(remembered())
    except (RedisConnectionError, RedisTimeoutError) as exc:
        log.warning("page drawn without its rows: Redis unavailable (%s)", exc)
        return render_template("index.html", rows=[], unavailable=True), 503
    if len(rows) != len(remembered()):
        session[SESSION_KEY] = [row["id"] for row in rows]
    return render_template("index.html", rows=rows, unavailable=False)


def job_rows(job_ids: list[str]) -> list[dict[str, Any]]:
    """A row (id, URLs, current payload) per job, skipping those Redis no longer holds."""
    rows = []
    for job_id in job_ids:
        try:
            payload = snapshot(job_id, get_redis())
        except NoSuchJobError:
            continue
        rows.append({"id": job_id, **job_urls(job_id), "payload": payload})
    return rows
