"""The page's waiting and running texts in real headless Chromium (`web/static/waiting.js`): a place
in line and start time that move as the jobs ahead end, the usual duration, the tab's title, and a
desktop notification for a job that ends while the tab is hidden."""

import re

import pytest
from playwright.sync_api import expect

from jobs.durations import HISTORY_RUNS, record_run
from tests.browser.test_page import expect_result, group_row, row, start, start_group

# Wraps the Notification API to mark each one on the page (read from Python, never by eval: the
# page's CSP forbids it), and says the tab is hidden.
HIDDEN_WITH_NOTIFICATIONS = """
Object.defineProperty(document, "hidden", { get: () => true });
const Real = window.Notification;
function Recorded(title, options) {
  document.documentElement.dataset.notified = title;
  return new Real(title, options);
}
Object.defineProperty(Recorded, "permission", { get: () => Real.permission });
Recorded.requestPermission = (...args) => Real.requestPermission(...args);
window.Notification = Recorded;
"""


@pytest.fixture(autouse=True)
def history(stack):
    """The demo's history: one second per second of sleep, so 4 steps of 0.5 s usually take 2 s."""
    for _ in range(HISTORY_RUNS):
        record_run(stack.redis, "long_task", 1.0, 1.0)


def test_a_waiting_rows_place_and_start_time_change_as_the_jobs_ahead_end(page):
    first = start(page, steps=8, step_seconds=0.5)
    expect(row(page, first)).to_have_attribute("data-state", "PROGRESS")
    second, third = (start(page, steps=8, step_seconds=0.5) for _ in range(2))
    wait = row(page, third).locator(".job-wait")
    expect(wait).to_have_text(re.compile(r"^2nd in line · starts in about \d+ s$"))
    before = int(re.search(r"about (\d+) s", wait.text_content()).group(1))
    expect(row(page, second).locator(".job-wait")).to_have_text(re.compile(r"^1st in line"))
    expect(wait).to_have_text(re.compile(r"^1st in line · starts in about \d+ s$"), timeout=20_000)
    after = int(re.search(r"about (\d+) s", wait.text_content()).group(1))
    assert after < before
    expect(row(page, third)).to_have_attribute("data-state", "PROGRESS", timeout=20_000)
    expect_result(page, third, "SUCCESS", "Result: 42", timeout_ms=30_000)


def test_a_running_row_without_a_rate_yet_says_how_long_it_usually_takes(page):
    job_id = start(page, steps=4, step_seconds=2)
    expect(row(page, job_id).locator(".job-wait")).to_have_text("usually about 10 s")  # 8 s, rounded to 5
    expect_result(page, job_id, "SUCCESS", "Result: 42", timeout_ms=30_000)


def test_the_tab_title_shows_the_running_jobs_progress(page):
    title = page.title()
    job_id = start(page, steps=8, step_seconds=0.5)
    expect(page).to_have_title(re.compile(r"^\d+% · Long calculations$"))
    expect_result(page, job_id, "SUCCESS", "Result: 42")
    expect(page).to_have_title(title)


def test_a_group_row_counts_its_jobs_waiting_running_and_done(page):
    group = start_group(page, steps=4, step_seconds=0.25)
    counts = group_row(page, group["id"]).locator(".job-wait")
    expect(counts).to_have_text(re.compile(r"^\d waiting · \d running · \d done$"))
    expect(counts).to_have_text("0 waiting · 0 running · 3 done", timeout=30_000)


def test_a_job_that_ends_while_the_tab_is_hidden_raises_a_notification(new_context):
    context = new_context(permissions=["notifications"])
    context.add_init_script(HIDDEN_WITH_NOTIFICATIONS)
    page = context.new_page()
    page.goto("/")
    job_id = start(page, steps=2, step_seconds=0.25)
    expect_result(page, job_id, "SUCCESS", "Result: 42")
    expect(page.locator("html")).to_have_attribute("data-notified", f"Job {job_id[:8]} is done")


# Marks each permission request and each notification on the page; the tab stays visible.
VISIBLE_WITH_NOTIFICATIONS = """
const Real = window.Notification;
function Recorded(title, options) {
  document.documentElement.dataset.notified = title;
  return new Real(title, options);
}
Object.defineProperty(Recorded, "permission", { get: () => Real.permission });
Recorded.requestPermission = (...args) => {
  document.documentElement.dataset.asked = String(Number(document.documentElement.dataset.asked || 0) + 1);
  return Real.requestPermission(...args);
};
window.Notification = Recorded;
"""


def test_the_permission_is_asked_once_on_the_first_start_and_a_visible_tab_gets_no_notification(new_context):
    context = new_context()
    context.add_init_script(VISIBLE_WITH_NOTIFICATIONS)
    page = context.new_page()
    page.goto("/")
    first = start(page, steps=2, step_seconds=0.25)
    expect(page.locator("html")).to_have_attribute("data-asked", "1")
    context.grant_permissions(["notifications"])
    second = start(page, steps=2, step_seconds=0.25)
    for job_id in (first, second):
        expect_result(page, job_id, "SUCCESS", "Result: 42")
    expect(page.locator("html")).to_have_attribute("data-asked", "1")
    expect(page.locator("html")).not_to_have_attribute("data-notified", re.compile(".*"))
