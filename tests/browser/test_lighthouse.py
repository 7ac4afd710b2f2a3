"""Lighthouse 100 in all four categories on the page with a job running (`make lighthouse`)."""

import os
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from support import lighthouse


@pytest.fixture
def running_job(stack):
    """A browser's session with a long demo job it started; yields the Cookie header; cancels the job."""
    session = requests.Session()
    session.get(f"{stack.base_url}/", timeout=10)
    origin = {"Origin": stack.base_url}
    started = session.post(
        f"{stack.base_url}/longtask", json={"steps": 120, "step_seconds": 1}, headers=origin, timeout=10
    )
    assert started.status_code == 202
    job = started.json()
    try:
        yield job, "; ".join(f"{cookie.name}={cookie.value}" for cookie in session.cookies)
    finally:
        session.post(f"{stack.base_url}{job['cancel_url']}", headers=origin, timeout=10)


def test_the_page_with_a_job_running_scores_100_in_every_category(stack, running_job, tmp_path):
    if not lighthouse.LIGHTHOUSE.exists():
        if os.environ.get("CI"):
            pytest.fail("lighthouse is not installed: run `make lighthouse`")
        pytest.skip("lighthouse is not installed: `make lighthouse` installs it")
    job, cookie = running_job
    report = lighthouse.audit(f"{stack.base_url}/", tmp_path / "lighthouse.json", {"Cookie": cookie})
    # The job ran all through the audit, and the page loaded the shared stream's script twice: as
    # a script and as the SharedWorker that opens the stream (Lighthouse's network log does not
    # see a worker's own requests, so the stream itself is not listed).
    status = requests.get(urljoin(stack.base_url, job["status_url"]), timeout=10).json()
    assert status["state"] == "PROGRESS"
    loaded = [urlsplit(url).path for url in lighthouse.requested(report)]
    assert loaded.count("/static/stream_hub.js") == 2
    assert lighthouse.scores(report) == dict.fromkeys(lighthouse.CATEGORIES, 100), lighthouse.shortfalls(
        report
    )
