"""People: the page at `/`, with a row for each job this browser started (`web.auth.remembered`)."""

import logging
from typing import Any

from flask import Blueprint, render_template
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.exceptions import NoSuchJobError

from jobs.snapshot import snapshot
from web.auth import ensure_identity, forget_all_but, remembered
from web.extensions import get_redis
from web.job_urls import job_urls

log = logging.getLogger(__name__)

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    """The page: a start button and a row for every job this browser started that Redis still holds."""
    ensure_identity()
    try:
        rows = job_rows(remembered())
    except (RedisConnectionError, RedisTimeoutError) as exc:
        log.warning("page drawn without its rows: Redis unavailable (%s)", exc)
        return render_template("index.html", rows=[], unavailable=True), 503
    if len(rows) != len(remembered()):
        forget_all_but([row["id"] for row in rows])
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
