import json
import re

import pytest
from rq.job import Job

from support.apps import UNIT_SETTINGS, unreachable_redis_app
from tests.helpers import open_page, start_demo
from web import auth, create_app

INITIAL_JOBS = re.compile(r'<script id="initial-jobs" type="application/json">(.*?)</script>', re.S)


def rows(client) -> list[dict]:
    """The rows the page hands its script, as the browser would read them."""
    response = client.get("/")
    assert response.status_code == 200
    return json.loads(INITIAL_JOBS.search(response.get_data(as_text=True)).group(1))


def test_page_has_the_start_button_and_only_its_own_assets(client):
    response = client.get("/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "Start long calculation" in html
    assert 'data-start-url="/longtask"' in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(assets) == [
        "/static/favicon.svg",
        "/static/page_stream.js",
        "/static/progress.css",
        "/static/progress.js",
        "/static/stream_hub.js",
        "/static/waiting.js",
    ]
    for asset in assets:
        assert client.get(asset).status_code == 200
    assert client.get("/static/favicon.svg").mimetype == "image/svg+xml"
    assert '<meta name="viewport"' in html
    assert re.search(r'<meta name="description" content="[^"]{50,}">', html)


def test_page_has_an_accessible_progress_bar_template(client):
    html = client.get("/").get_data(as_text=True)
    assert re.search(r'<progress class="job-bar" max="100"', html)
    assert 'role="alert"' in html


def test_started_job_body_links_its_stream_and_cancel_route(client):
    body = start_demo(client, steps=2, step_seconds=0)
    job_id = body["id"]
    assert body == {
        "id": job_id,
        "status_url": f"/status/{job_id}",
        "events_url": f"/status/{job_id}/events",
        "logs_url": f"/status/{job_id}/logs",
        "cancel_url": f"/status/{job_id}/cancel",
    }


def test_page_redraws_the_jobs_this_browser_started(client, run_queued):
    open_page(client)
    first, second = start_demo(client, steps=2, step_seconds=0), start_demo(client, steps=3, step_seconds=0)
    run_queued()
    drawn = rows(client)
    assert [row["id"] for row in drawn] == [first["id"], second["id"]]
    assert drawn[0]["events_url"] == first["events_url"]
    assert drawn[0]["cancel_url"] == first["cancel_url"]
    assert (drawn[0]["payload"]["state"], drawn[0]["payload"]["result"]) == ("SUCCESS", 42)


def test_another_browser_does_not_see_them(app, client):
    open_page(client)
    start_demo(client, steps=2, step_seconds=0)
    assert rows(app.test_client()) == []


def test_expired_jobs_leave_the_list(client, redis):
    open_page(client)
    gone, kept = start_demo(client, steps=2, step_seconds=0), start_demo(client, steps=2, step_seconds=0)
    Job.fetch(gone["id"], connection=redis).delete()
    assert [row["id"] for row in rows(client)] == [kept["id"]]
    with client.session_transaction() as session:
        assert session[auth.SESSION_KEY] == [kept["id"]]


def test_the_list_keeps_the_newest_jobs(client):
    open_page(client)
    started = [start_demo(client, steps=2, step_seconds=0)["id"] for _ in range(auth.MAX_REMEMBERED + 3)]
    assert [row["id"] for row in rows(client)] == started[-auth.MAX_REMEMBERED :]


def test_a_forged_session_cookie_is_ignored(app, client, queue):
    job = queue.enqueue("tests.fixture_jobs.answer")
    other = create_app(
        {**UNIT_SETTINGS, "SECRET_KEY": "not-ours", "REDIS_CONNECTION": app.extensions["rq"]["redis"]}
    )
    with other.test_client() as forger:
        with forger.session_transaction() as session:
            session[auth.SESSION_KEY] = [job.id]
        cookie = forger.get_cookie("session").value
    client.set_cookie("session", cookie)
    assert rows(client) == []


@pytest.mark.parametrize("stored", [None, "abc", {"a": 1}, [1, None, "x"]])
def test_odd_session_values_do_not_break_the_page(client, stored):
    with client.session_transaction() as session:
        session[auth.SESSION_KEY] = stored
    assert rows(client) == []


def test_redis_down_gives_a_visible_error_page():
    client = unreachable_redis_app().test_client()
    with client.session_transaction() as session:
        session[auth.SESSION_KEY] = ["some-job"]
    response = client.get("/")
    assert response.status_code == 503 and response.mimetype == "text/html"
    assert "job store is unavailable" in response.get_data(as_text=True)


INITIAL_GROUPS = re.compile(r'<script id="initial-groups" type="application/json">(.*?)</script>', re.S)


def test_page_redraws_the_groups_this_browser_started_and_forgets_expired_ones(client, redis):
    demo = {"name": "long_task", "args": {"steps": 1, "step_seconds": 0}}
    open_page(client)
    kept, gone = (client.post("/api/groups", json={"jobs": [demo, demo]}).get_json() for _ in range(2))
    for job in gone["jobs"]:
        Job.fetch(job["id"], connection=redis).delete()
    html = client.get("/").get_data(as_text=True)
    assert 'data-group-url="/api/groups"' in html
    groups = json.loads(INITIAL_GROUPS.search(html).group(1))
    assert [group["id"] for group in groups] == [kept["id"]]
    assert groups[0]["payload"]["total"] == 2
    assert [job["events_url"] for job in groups[0]["jobs"]] == [job["events_url"] for job in kept["jobs"]]
    with client.session_transaction() as session:
        assert session[auth.GROUPS_KEY] == [kept["id"]]


def test_the_script_learns_job_names_and_payload_text_from_the_page(client):
    from pathlib import Path

    from jobs import contract
    from jobs.registry import CATALOG, DEMO_JOB

    script = (Path(__file__).resolve().parent.parent / "web" / "static" / "progress.js").read_text()
    assert [name for name in CATALOG if f'"{name}"' in script or f"'{name}'" in script] == []
    texts = [
        value for name, value in vars(contract).items() if name.endswith("_STATUS") and isinstance(value, str)
    ]
    assert contract.PENDING_STATUS in texts
    assert [text for text in texts if text in script] == []
    html = client.get("/").get_data(as_text=True)
    assert f'data-group-job="{DEMO_JOB}"' in html
    assert f'data-pending-status="{contract.PENDING_STATUS}"' in html
