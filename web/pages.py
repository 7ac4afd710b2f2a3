"""People: the page at `/`, with a row for each job and group this browser started (`web.auth`)."""

import hashlib
import logging
from typing import Any

from flask import Blueprint, render_template, url_for
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.exceptions import NoSuchGroupError, NoSuchJobError

from jobs.contract import PENDING_STATUS
from jobs.groups import group_snapshot
from jobs.registry import DEMO_JOB
from jobs.snapshot import snapshot
from web.auth import REMEMBERED_GROUPS, REMEMBERED_JOBS, ensure_identity, session_owner
from web.extensions import get_redis
from web.group_urls import group_urls
from web.job_urls import job_urls
from web.shared_routes import on_streams_listener

log = logging.getLogger(__name__)

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    """The page: start buttons, and a row per job and group this browser started that Redis still holds."""
    ensure_identity()
    try:
        rows = job_rows(REMEMBERED_JOBS.ids())
        groups = group_rows(REMEMBERED_GROUPS.ids())
    except (RedisConnectionError, RedisTimeoutError) as exc:
        log.warning("page drawn without its rows: Redis unavailable (%s)", exc)
        return render_page(rows=[], groups=[], unavailable=True), 503
    REMEMBERED_JOBS.keep_only([row["id"] for row in rows])
    REMEMBERED_GROUPS.keep_only([group["id"] for group in groups])
    return render_page(rows=rows, groups=groups, unavailable=False)


def render_page(**rows: Any) -> str:
    """index.html with what the script learns from the server: the job a group starts, and the
    status text of a job no payload has been read for yet (the contract's)."""
    return render_template("index.html", group_job=DEMO_JOB, pending_status=PENDING_STATUS, **rows)


@bp.context_processor
def stream_urls() -> dict[str, str]:
    """Where the page's rows stream from: this browser's own stream, on the streams listener. Its
    fragment names the session (never sent to the server): the tabs' shared stream is opened anew
    when a page comes with another session than the stream was opened with (`stream_hub.js`)."""
    session_tag = hashlib.sha256(session_owner(ensure_identity()).encode()).hexdigest()[:12]
    return {"browser_events_url": on_streams_listener(url_for("browser_events.events")) + "#" + session_tag}


def group_rows(group_ids: list[str]) -> list[dict[str, Any]]:
    """A row (id, URLs, current payload, each job's URLs) per group, skipping those Redis no longer holds."""
    rows = []
    for group_id in group_ids:
        try:
            payload = group_snapshot(get_redis(), group_id)
        except NoSuchGroupError:
            continue
        rows.append(group_row(group_id, payload))
    return rows


def group_row(group_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A group's row: its id, URLs and payload, and each of its jobs' URLs."""
    jobs = [{"id": job["id"], **job_urls(job["id"])} for job in payload["jobs"]]
    return {"id": group_id, **group_urls(group_id), "payload": payload, "jobs": jobs}


def job_row(job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A job's row: its id, URLs and payload."""
    return {"id": job_id, **job_urls(job_id), "payload": payload}


def job_rows(job_ids: list[str]) -> list[dict[str, Any]]:
    """A row (id, URLs, current payload) per job, skipping those Redis no longer holds."""
    rows = []
    for job_id in job_ids:
        try:
            payload = snapshot(job_id, get_redis())
        except NoSuchJobError:
            continue
        rows.append(job_row(job_id, payload))
    return rows
