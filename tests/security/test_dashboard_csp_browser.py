"""In Chromium: markup stored in a job's description or result runs nothing on its dashboard page."""

import pytest
from rq import Queue, SimpleWorker

from tests.fixture_jobs import markup

USER, PASSWORD = "ops", "dashboard-password"
WEB_SETTINGS = {"RQ_DASHBOARD_USERNAME": USER, "RQ_DASHBOARD_PASSWORD": PASSWORD}


@pytest.fixture(scope="module")
def stored_markup(server) -> dict[str, str]:
    """Jobs enqueued with RQ's own API: one described by markup, one that returned markup (run for real)."""
    queue = Queue("csp", connection=server.client)
    described = queue.enqueue("tests.fixture_jobs.answer", description=markup())
    returned = queue.enqueue("tests.fixture_jobs.markup")
    SimpleWorker([queue], connection=server.client).work(burst=True)
    return {"description": described.id, "result": returned.id}


@pytest.mark.parametrize("where", ["description", "result"])
def test_stored_markup_is_inert_and_the_page_still_renders(webs, browser, stored_markup, where):
    (app,) = webs
    job_id = stored_markup[where]
    context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD})
    try:
        page = context.new_page()
        violations = []
        page.on("console", lambda message: violations.append(message.text))
        response = page.goto(f"{app}/rq/0/view/job/{job_id}")
        policy = response.headers["content-security-policy"]
        assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
        assert "frame-ancestors 'none'" in policy and response.headers["x-content-type-options"] == "nosniff"
        # The dashboard's own scripts ran: they fetched the job and drew it from their template...
        page.wait_for_selector("#job-data img[src=x]", state="attached", timeout=15_000)
        assert "Origin queue" in page.inner_text("#job-data")
        # ...and the stored handler did not run.
        page.wait_for_function(
            "() => [...document.querySelectorAll('#job-data img')].every(img => img.complete)", timeout=15_000
        )
        assert page.title() != "pwned"
        assert any("Content Security Policy" in text for text in violations), violations
    finally:
        context.close()
