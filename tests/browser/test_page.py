"""The page in real headless Chromium: live bars, several at once, cancel, reload, failure, fallback."""

import json
import os
import re
import shutil
import uuid

from playwright.sync_api import expect
from rq import Queue, SimpleWorker

from jobs.callbacks import CALLBACKS, initial_meta
from support.servers import start_worker, stop_process
from support.wait import wait_until
from tests.browser.conftest import ARTIFACTS, ROOT, SECRET_KEY
from web import create_app
from web.auth import SESSION_KEY


def start(page, steps: int, step_seconds: float) -> str:
    """Size the calculation, click Start, and return the new job's id from the 202 answer."""
    if not page.is_visible("#steps"):
        page.click("summary")
    page.fill("#steps", str(steps))
    page.fill("#step-seconds", str(step_seconds))
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        page.click("#start")
    assert answer.value.status == 202
    return answer.value.json()["id"]


def row(page, job_id: str):
    return page.locator(f'li.job[data-job-id="{job_id}"]')


def expect_result(page, job_id: str, state: str, text: str, timeout_ms: int = 20_000) -> None:
    expect(row(page, job_id)).to_have_attribute("data-state", state, timeout=timeout_ms)
    expect(row(page, job_id).locator(".job-result")).to_have_text(text)


def test_one_bar_is_pushed_to_100_percent_and_shows_42(page):
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    job_id = start(page, steps=4, step_seconds=0.25)
    bar = row(page, job_id).locator("progress")
    expect(row(page, job_id)).to_have_attribute("data-state", "PROGRESS")
    expect_result(page, job_id, "SUCCESS", "Result: 42")
    assert bar.evaluate("bar => bar.value") == 100
    expect(row(page, job_id).locator(".job-percent")).to_have_text("100%")
    expect(row(page, job_id).locator(".job-cancel")).to_be_hidden()
    expect(page.locator("#jobs")).to_have_attribute("data-live", "true")  # its browser's one stream
    assert not any(url.endswith(f"/status/{job_id}") for url in requested), "pushed, never polled"


def test_three_bars_run_at_once_and_all_finish(page):
    ids = [start(page, steps=6, step_seconds=0.25) for _ in range(3)]
    expect(page.locator("li.job")).to_have_count(3)
    for job_id in ids:
        expect_result(page, job_id, "SUCCESS", "Result: 42")

    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "fits a phone"


def test_cancel_ends_a_waiting_and_a_running_row_in_failure(page):
    running = start(page, steps=40, step_seconds=0.25)
    waiting = start(page, steps=40, step_seconds=0.25)
    expect(row(page, running)).to_have_attribute("data-state", "PROGRESS")
    expect(row(page, waiting)).to_have_attribute("data-state", "PENDING")

    row(page, waiting).locator(".job-cancel").click()
    expect_result(page, waiting, "FAILURE", "Failed: canceled", timeout_ms=5_000)
    row(page, running).locator(".job-cancel").click()
    expect_result(page, running, "FAILURE", "Failed: stopped", timeout_ms=5_000)
    expect(row(page, running).locator(".job-cancel")).to_be_hidden()


def test_reload_redraws_this_browsers_rows_and_no_one_elses(page, new_context):
    finished = start(page, steps=1, step_seconds=0.05)
    expect_result(page, finished, "SUCCESS", "Result: 42")
    running = start(page, steps=8, step_seconds=0.25)
    expect(row(page, running)).to_have_attribute("data-state", "PROGRESS")

    page.reload()
    expect(page.locator("li.job")).to_have_count(2)
    expect(row(page, finished).locator(".job-result")).to_have_text("Result: 42")
    expect_result(page, running, "SUCCESS", "Result: 42")

    stranger = new_context().new_page()
    stranger.goto("/")
    expect(stranger.locator("#start")).to_be_visible()
    expect(stranger.locator("li.job")).to_have_count(0)


def adopted_page(new_context, base_url: str, job_ids: list[str]):
    """A page in a fresh profile whose session cookie lists jobs it did not start through the page.

    The cookie is set before the profile loads anything: a response to an earlier page (its
    favicon, a poll) would refresh the older cookie over it.
    """
    app = create_app({"SECRET_KEY": SECRET_KEY, "REDIS_URL": "redis://unused", "BACKGROUND_THREADS": False})
    cookie = app.session_interface.get_signing_serializer(app).dumps({SESSION_KEY: job_ids})
    context = new_context(viewport={"width": 1000, "height": 640})
    context.add_cookies([{"name": "session", "value": cookie, "url": base_url}])
    page = context.new_page()
    page.goto("/")
    return page


def test_a_failing_job_shows_its_message(new_context, stack):
    # The failing job waits on a job in a queue no worker serves, until the test runs that one.
    gate = Queue(f"gate-{uuid.uuid4().hex}", connection=stack.redis)
    failing = Queue("default", connection=stack.redis).enqueue(
        "tests.fixture_jobs.fail",
        "the reactor is out of coolant",
        depends_on=gate.enqueue("tests.fixture_jobs.answer"),
        **CALLBACKS,
    )
    page = adopted_page(new_context, stack.base_url, [failing.id])
    expect(row(page, failing.id)).to_have_attribute("data-state", "PENDING")
    SimpleWorker([gate], connection=stack.redis).work(burst=True)
    expect_result(page, failing.id, "FAILURE", "Failed: the reactor is out of coolant")
    expect(row(page, failing.id).locator(".job-error")).to_be_hidden()


def test_polling_takes_over_without_eventsource(new_context):
    context = new_context()
    context.add_init_script("delete window.EventSource;")
    page = context.new_page()
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/")
    job_id = start(page, steps=3, step_seconds=0.2)
    expect_result(page, job_id, "SUCCESS", "Result: 42")
    assert not any(url.endswith("/events") for url in requested)
    assert sum(url.endswith(f"/status/{job_id}") for url in requested) >= 2


def test_a_failed_stream_and_poll_show_an_error_on_the_row(new_context):
    # Without SharedWorker the page holds its browser's stream itself, where a route reaches it.
    context = new_context()
    context.add_init_script("delete window.SharedWorker;")
    page = context.new_page()
    unavailable = json.dumps({"error": {"code": 503, "message": "the job store (Redis) is unavailable"}})

    def refuse(route):
        if route.request.url.endswith("/events"):
            route.fulfill(status=503, body="")
        else:
            route.fulfill(status=503, content_type="application/json", body=unavailable)

    def job_urls(url):
        return "/status/" in url or url.endswith("/events")

    page.route(job_urls, refuse)
    page.goto("/")
    job_id = start(page, steps=8, step_seconds=0.25)
    error = row(page, job_id).locator(".job-error")
    expect(error).to_contain_text("the job store (Redis) is unavailable")
    expect(error).to_be_visible()

    page.unroute(job_urls)
    expect_result(page, job_id, "SUCCESS", "Result: 42")
    expect(error).to_be_hidden()


def log_lines(page, job_id: str):
    return row(page, job_id).locator(".job-log-lines li")


def test_the_log_pane_follows_a_running_jobs_lines_to_the_end(page):
    job_id = start(page, steps=24, step_seconds=0.1)
    row(page, job_id).locator(".job-log summary").click()
    expect(log_lines(page, job_id).first).to_contain_text("step 0 of 24: ")
    expect_result(page, job_id, "SUCCESS", "Result: 42")
    expect(log_lines(page, job_id)).to_have_count(24)
    expect(log_lines(page, job_id).last).to_contain_text("step 23 of 24: ")
    expect(row(page, job_id).locator(".job-log-count")).to_have_text("(24 lines)")
    pane = row(page, job_id).locator(".job-log-lines")
    assert pane.evaluate("list => list.scrollHeight > list.clientHeight"), "enough lines to scroll"
    assert pane.evaluate("list => list.scrollHeight - list.scrollTop - list.clientHeight < 8"), "at the end"


def test_a_reloaded_rows_log_is_read_from_its_log_url_and_shown_as_text(new_context, stack):
    markup = '<img src=x onerror="document.body.dataset.owned=1">'
    job = Queue("default", connection=stack.redis).enqueue(
        "tests.fixture_jobs.write_lines", ["plain", markup], "warning", **CALLBACKS
    )
    wait_until(lambda: job.get_status(refresh=True) == "finished", what="the job finished")
    page = adopted_page(new_context, stack.base_url, [job.id])
    expect_result(page, job.id, "SUCCESS", "Result: 2")
    row(page, job.id).locator(".job-log summary").click()
    expect(log_lines(page, job.id)).to_have_count(2)
    expect(log_lines(page, job.id).last.locator("span")).to_have_text(f"warning: {markup}")
    assert row(page, job.id).locator(".job-log-lines img").count() == 0
    assert page.evaluate("document.body.dataset.owned") is None


def test_a_running_row_says_about_how_long_is_left(page):
    job_id = start(page, steps=16, step_seconds=0.5)
    expect(row(page, job_id).locator(".job-left")).to_have_text(re.compile(r"^about \d+ s left$"))
    expect_result(page, job_id, "SUCCESS", "Result: 42")
    expect(row(page, job_id).locator(".job-left")).to_have_text("")


def test_a_job_quiet_past_its_stall_after_s_shows_as_stalled_then_finishes(new_context, stack, tmp_path):
    release = tmp_path / "release"
    job = Queue("default", connection=stack.redis).enqueue(
        "tests.fixture_jobs.wait_for_file", str(release), meta=initial_meta(stall_after_s=1), **CALLBACKS
    )
    page = adopted_page(new_context, stack.base_url, [job.id])
    expect(row(page, job.id).locator(".job-state")).to_have_text("stalled")
    expect(row(page, job.id).locator(".job-status")).to_have_text(re.compile(r"^no progress for \d+ s$"))
    expect(row(page, job.id)).to_have_attribute("data-state", "PROGRESS")
    release.touch()
    expect_result(page, job.id, "SUCCESS", f"Result: {release}")


def group_row(page, group_id: str):
    return page.locator(f'li.group[data-group-id="{group_id}"]')


def start_group(page, steps: int, step_seconds: float) -> dict:
    """Size the jobs, click "Start 3 together", and return the 202 answer's body."""
    if not page.is_visible("#steps"):
        page.click("summary")
    page.fill("#steps", str(steps))
    page.fill("#step-seconds", str(step_seconds))
    with page.expect_response(lambda response: response.url.endswith("/api/groups")) as answer:
        page.click("#start-group")
    assert answer.value.status == 202
    return answer.value.json()


def test_a_group_is_one_bar_with_its_jobs_beneath_rising_to_success(page):
    started = start_group(page, steps=3, step_seconds=0.2)
    group = group_row(page, started["id"])
    expect(group.locator("li.member")).to_have_count(3)
    expect(group.locator(".job-name")).to_have_text(f"Group {started['id'][:8]} · 3 jobs")
    expect(group).to_have_attribute("data-state", "PROGRESS")
    expect(group).to_have_attribute("data-state", "SUCCESS", timeout=30_000)
    expect(group.locator(".job-result")).to_have_text("All 3 jobs done")
    expect(group.locator(".job-percent")).to_have_text("100%")
    expect(group.locator("li.member .member-state")).to_have_text(["done", "done", "done"])
    assert [item.get_attribute("data-job-id") for item in group.locator("li.member").all()] == [
        job["id"] for job in started["jobs"]
    ]


def test_cancel_all_ends_every_job_of_a_group(page):
    started = start_group(page, steps=40, step_seconds=0.25)
    group = group_row(page, started["id"])
    expect(group.locator("li.member").first).to_have_attribute("data-state", "PROGRESS")
    group.locator(".job-cancel").click()
    expect(group).to_have_attribute("data-state", "FAILURE", timeout=10_000)
    expect(group.locator(".job-result")).to_have_text("Failed: 3 of 3 jobs")
    expect(group.locator("li.member .member-status")).to_have_text(["stopped", "canceled", "canceled"])


def test_screenshot_shows_a_log_the_time_left_and_a_group(page, stack):
    """The README's picture: a finished job, a running one with its log open, and a group in flight."""
    second, _ = start_worker(stack.redis_url, stack.logs)
    try:
        finished = start(page, steps=1, step_seconds=0.05)
        expect_result(page, finished, "SUCCESS", "Result: 42")
        # One worker takes this job, the other the group's jobs in turn.
        running = start(page, steps=24, step_seconds=0.3)
        expect(row(page, running)).to_have_attribute("data-state", "PROGRESS")
        started = start_group(page, steps=6, step_seconds=0.5)
        row(page, running).locator(".job-log summary").click()
        expect(row(page, running).locator(".job-left")).to_have_text(re.compile(r"^about \d+ s left$"))
        expect(log_lines(page, running).nth(4)).to_be_attached()  # five lines or more
        group = group_row(page, started["id"])
        expect(group.locator("li.member").nth(1)).to_have_attribute("data-state", "PROGRESS", timeout=20_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "screenshot.png", animations="disabled", full_page=True)
        if os.environ.get("UPDATE_SCREENSHOT"):
            shutil.copy(ARTIFACTS / "screenshot.png", ROOT / "docs" / "screenshot.png")
        expect(group).to_have_attribute("data-state", "SUCCESS", timeout=30_000)
        expect_result(page, running, "SUCCESS", "Result: 42")
    finally:
        stop_process(second)
