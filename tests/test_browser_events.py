"""A browser's own event stream (`GET /events`): its rows only, its own origin only, resumed without loss."""

import pytest
from rq import Queue
from rq.job import Job, JobStatus

from jobs import joblog
from jobs.channel import publish, publish_line_moved
from jobs.contract import to_payload
from support.apps import UNIT_SETTINGS
from support.sse import read_events
from support.wait import wait_until
from tests.helpers import open_page, start_demo
from web import create_app, events
from web.browser_relay import resume_point

PAGE_PORT = 5000


@pytest.fixture(autouse=True)
def quick_listener(monkeypatch):
    """Wake the listener often, so that closing an app's fan-out takes milliseconds."""
    monkeypatch.setattr(events, "LISTEN_POLL_S", 0.05)


@pytest.fixture
def app(redis):
    """The app as the streams listener runs it (PAGE_PORT set), on fakeredis, with short stream timings."""
    settings = {
        "SSE_HEARTBEAT_S": 0.2,
        "SSE_MAX_AGE_S": 10.0,
        "LOST_JOB_CHECK_INTERVAL_S": 0,
        "PAGE_PORT": PAGE_PORT,
    }
    app = create_app({**UNIT_SETTINGS, "BACKGROUND_THREADS": True, "REDIS_CONNECTION": redis, **settings})
    yield app
    app.extensions["events"].close()


@pytest.fixture
def browser(app):
    """Open browsers (test clients that loaded the page); their streams are closed at the end."""
    responses = []

    class Browser:
        def __init__(self):
            self.client = app.test_client()
            open_page(self.client)

        def stream(self, **headers):
            response = self.client.get("/events", headers=headers, buffered=False)
            responses.append(response)
            return response, iter(response.response)

    yield Browser
    for response in responses:
        response.close()


def until(chunks, predicate):
    """The events of a stream up to the first for which `predicate` is true (heartbeats bound each read)."""
    return list(read_events(chunks, predicate))


def progress(job_id, current, at):
    meta = {"progress": {"current": current, "total": 4, "status": f"step {current}", "updated_at": at}}
    return to_payload(job_id, JobStatus.STARTED, meta)


def test_a_stream_needs_the_browsers_session(client):
    response = client.get("/events")
    assert response.status_code == 403
    assert "load the page first" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "origin",
    ["http://localhost:5002", "http://evil.example:5000", "https://localhost:5000", "null"],
)
def test_a_page_of_another_origin_is_refused_even_with_the_cookie(browser, origin):
    response, _ = browser().stream(Origin=origin)
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers


def test_the_apps_own_page_reads_it_with_credentials(browser):
    response, chunks = browser().stream(Origin=f"http://localhost:{PAGE_PORT}")
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert response.headers["Access-Control-Allow-Origin"] == f"http://localhost:{PAGE_PORT}"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


def test_it_carries_this_browsers_rows_and_those_started_later_never_anothers(browser, redis):
    mine, theirs = browser(), browser()
    earlier = start_demo(mine.client)["id"]
    other = start_demo(theirs.client)["id"]
    _, chunks = mine.stream()
    rows = until(chunks, lambda event: event.event == "row")
    assert [(row.json()["kind"], row.json()["id"]) for row in rows if row.event == "row"] == [
        ("job", earlier)
    ]
    assert rows[-1].json()["status_url"] == f"/status/{earlier}"

    later = start_demo(mine.client)["id"]
    added = until(chunks, lambda event: event.event == "row")[-1].json()
    assert (added["id"], added["payload"]["state"]) == (later, "PENDING")

    group = mine.client.post("/api/groups", json={"jobs": [{"name": "long_task", "args": {"steps": 2}}] * 2})
    group_row = until(chunks, lambda event: event.event == "row")[-1].json()
    assert (group_row["kind"], group_row["id"]) == ("group", group.get_json()["id"])
    assert len(group_row["jobs"]) == 2

    publish(redis, progress(other, 1, "2026-01-01T00:00:01.000000Z"))
    publish(redis, progress(later, 2, "2026-01-01T00:00:02.000000Z"))
    member = group_row["jobs"][0]["id"]
    publish(redis, progress(member, 2, "2026-01-01T00:00:03.000000Z"))
    seen = until(chunks, lambda event: event.event == "group")
    updates = [(event.event, event.json()["id"]) for event in seen if event.event in ("job", "group")]
    assert updates == [("job", later), ("group", group_row["id"])]
    assert seen[-1].json()["jobs"][0]["current"] == 2


def write_line(redis, job_id, message):
    job = Job.fetch(job_id, connection=redis)
    joblog.write(job, [joblog.make_line(message)])


def test_log_lines_name_their_job_and_a_resumed_stream_sends_each_row_and_the_lines_after(browser, redis):
    mine = browser()
    first, second = start_demo(mine.client)["id"], start_demo(mine.client)["id"]
    write_line(redis, first, "before the stream")
    _, chunks = mine.stream()
    replayed = until(chunks, lambda event: event.event == "log")[-1]
    assert (replayed.json()["job"], replayed.json()["message"]) == (first, "before the stream")

    write_line(redis, second, "seen")
    seen = until(chunks, lambda event: event.event == "log")[-1]
    assert (seen.json()["job"], seen.json()["message"], seen.id) == (second, "seen", seen.json()["id"])
    # The connection drops here; these lines and this progress are saved while it is down.
    write_line(redis, first, "missed 1")
    write_line(redis, second, "missed 2")
    job = Job.fetch(first, connection=redis)
    job.meta["progress"] = {"current": 3, "total": 4, "status": "step 3"}
    job.set_status(JobStatus.STARTED)
    job.save_meta()

    response, resumed = mine.stream(**{"Last-Event-ID": seen.id})
    assert response.status_code == 200, response.get_data(as_text=True)
    frames = until(resumed, lambda event: event.event == "log" and event.json()["message"] == "missed 2")
    rows = {event.json()["id"]: event.json()["payload"] for event in frames if event.event == "row"}
    assert rows.keys() == {first, second} and rows[first]["current"] == 3
    lines = [(event.json()["job"], event.json()["message"]) for event in frames if event.event == "log"]
    # From the millisecond of the last line seen on: that line may come again, none before it.
    assert ("missed 1" in dict(lines).values()) and (first, "before the stream") not in lines
    assert [message for _, message in lines if message != "seen"] == ["missed 1", "missed 2"]


@pytest.mark.parametrize(
    ("last_event_id", "after"),
    [(None, None), ("", None), ("not-an-id", None), ("1700000000123-4", "1700000000122-9999999999999999999")],
)
def test_resume_point_is_just_before_the_last_lines_millisecond(last_event_id, after):
    assert resume_point(last_event_id) == after


def test_a_waiting_row_gets_its_new_place_when_the_line_moves(app, browser, redis):
    app.config["SSE_HEARTBEAT_S"] = 30.0  # no re-read by heartbeat: only the line's message moves it
    mine = browser()
    ahead, waiting = start_demo(mine.client)["id"], start_demo(mine.client)["id"]
    _, chunks = mine.stream()
    rows = until(chunks, lambda event: event.event == "row" and event.json()["id"] == waiting)
    before = rows[-1].json()["payload"]
    wait_until(app.extensions["events"].is_listening, timeout_s=5)
    Queue(Job.fetch(ahead, connection=redis).origin, connection=redis).remove(ahead)  # as a worker taking it
    assert publish_line_moved(redis, Job.fetch(waiting, connection=redis).origin) == 1
    moved = until(chunks, lambda event: event.event == "job" and event.json()["id"] == waiting)[-1].json()
    assert (before["position"], moved["position"]) == (2, 1)
