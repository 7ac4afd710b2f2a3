"""The jobs API against real servers: delay, retries, idempotency, backpressure, the email job."""

import email
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from rq import Queue

from jobs.control import request_stop
from jobs.registry import CATALOG, start_job
from support.servers import start_web, start_worker, stop_process
from support.wait import wait_until
from tests.fixture_jobs import flaky_job
from tests.smtp_server import smtp_server
from web import tokens


def status_of(http, base, status_url) -> dict:
    """One answer of the status route."""
    response = http.get(base + status_url, timeout=5)
    assert response.status_code == 200
    return response.json()


def wait_for_state(http, base, status_url, state, timeout_s=20.0) -> dict:
    """The first status answer in `state` (fails at the deadline with the last answer)."""
    return wait_until(
        lambda: (body := status_of(http, base, status_url))["state"] == state and body, timeout_s=timeout_s
    )


@pytest.fixture(scope="module")
def queues() -> dict[str, str]:
    """Queue names of this module's own: one a mail worker serves, one nobody serves."""
    suffix = uuid.uuid4().hex[:8]
    return {"mail": f"mail-{suffix}", "held": f"held-{suffix}"}


@pytest.fixture(scope="module")
def inbox():
    """A real SMTP server (aiosmtpd) for the module."""
    with smtp_server() as inbox:
        yield inbox


@pytest.fixture(scope="module")
def mail_worker(redis_url, logs_dir, queues, inbox):
    """An `rq worker` on the mail queue that knows the SMTP server."""
    process, name = start_worker(redis_url, logs_dir, queues=(queues["mail"],), env={"SMTP_URL": inbox.url})
    yield name
    stop_process(process)


@pytest.fixture(scope="module")
def small_web(redis_url, logs_dir, queues):
    """A web server that also offers this module's queues and refuses a third waiting job."""
    names = f"high,default,low,{queues['mail']},{queues['held']}"
    process, base = start_web(redis_url, logs_dir, {"QUEUES": names, "QUEUE_MAX_JOBS": "2"})
    yield base
    stop_process(process)


@pytest.fixture
def flaky(monkeypatch):
    """A job that fails its first attempts, retried twice a second apart (registered in this process)."""
    monkeypatch.setitem(CATALOG, "flaky", flaky_job((1, 1), timeout_s=30))


def test_delayed_job_is_pending_with_an_eta_then_runs(http, web, worker):
    before = datetime.now(UTC)
    response = http.post(
        f"{web}/api/jobs",
        json={"name": "long_task", "args": {"steps": 1, "step_seconds": 0}, "delay_seconds": 2},
        timeout=5,
    )
    assert response.status_code == 202
    pending = status_of(http, web, response.headers["Location"])
    assert pending["state"] == "PENDING"
    eta = datetime.fromisoformat(pending["eta"])
    assert 1 <= (eta - before).total_seconds() <= 4
    final = wait_for_state(http, web, response.headers["Location"], "SUCCESS")
    assert final["result"] == 42 and "eta" not in final


def test_retried_job_says_it_is_retrying_then_succeeds(http, web, worker, redis_client, flaky):
    job = start_job(redis_client, "flaky", {"key": f"attempts-{uuid.uuid4().hex}", "failures": 1})
    waiting = wait_until(
        lambda: (body := status_of(http, web, f"/status/{job.id}"))["status"].startswith("retrying") and body
    )
    assert waiting["state"] == "PENDING"
    assert waiting["status"] in ("retrying 1/2 in 1 s", "retrying 1/2")
    final = wait_for_state(http, web, f"/status/{job.id}", "SUCCESS")
    assert final["result"] == "succeeded on attempt 2"


def test_job_that_keeps_failing_reports_the_last_error(http, web, worker, redis_client, flaky):
    job = start_job(redis_client, "flaky", {"key": f"attempts-{uuid.uuid4().hex}", "failures": 5})
    seen = []

    def failed():
        seen.append(status_of(http, web, f"/status/{job.id}"))
        return seen[-1]["state"] == "FAILURE" and seen[-1]

    final = wait_until(failed, timeout_s=20)
    assert final["status"] == "attempt 3 failed"
    waiting = {body["status"].split(" in ")[0] for body in seen if body["state"] == "PENDING"}
    assert {"retrying 1/2", "retrying 2/2"} <= waiting


def test_double_click_with_one_idempotency_key_starts_one_job(http, small_web, redis_client, queues):
    body = {"name": "long_task", "args": {"steps": 1}, "queue": queues["held"]}
    headers = {"Idempotency-Key": f"click-{uuid.uuid4().hex}"}
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda _: http.post(f"{small_web}/api/jobs", json=body, headers=headers, timeout=5), range(4)
            )
        )
    assert {answer.status_code for answer in answers} == {202}
    assert len({answer.json()["id"] for answer in answers}) == 1
    held = Queue(queues["held"], connection=redis_client)
    assert held.job_ids == [answers[0].json()["id"]]
    held.empty()


def test_full_queue_answers_503_and_keeps_its_jobs(http, small_web, redis_client, queues):
    body = {"name": "long_task", "queue": queues["held"]}
    started = [http.post(f"{small_web}/api/jobs", json=body, timeout=5) for _ in range(2)]
    assert [answer.status_code for answer in started] == [202, 202]
    refused = http.post(f"{small_web}/api/jobs", json=body, timeout=5)
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json()["error"]["code"] == 503
    held = Queue(queues["held"], connection=redis_client)
    assert held.job_ids == [answer.json()["id"] for answer in started]
    held.empty()


def test_email_job_sends_one_message_per_recipient(http, small_web, mail_worker, inbox, queues, redis_client):
    recipients = [f"{name}-{uuid.uuid4().hex[:6]}@example.com" for name in ("ada", "bob", "cy")]
    secret = tokens.create(redis_client, f"mailer-{uuid.uuid4().hex[:6]}", frozenset({"start:send_email"}))
    response = http.post(
        f"{small_web}/api/jobs",
        json={
            "name": "send_email",
            "args": {"to": recipients, "subject": "Your report", "body": "It is ready."},
            "queue": queues["mail"],
        },
        headers={"Authorization": f"Bearer {secret}"},
        timeout=5,
    )
    assert response.status_code == 202
    final = wait_for_state(http, small_web, response.headers["Location"], "SUCCESS")
    assert final["result"] == {"sent": 3, "recipients": 3}
    received = {rcpts[0]: email.message_from_bytes(content) for rcpts, content in inbox.messages}
    assert set(recipients) <= set(received)
    assert received[recipients[0]]["Subject"] == "Your report"


def test_running_job_stops_between_steps_when_asked(http, web, worker, redis_client):
    response = http.post(
        f"{web}/api/jobs", json={"name": "long_task", "args": {"steps": 200, "step_seconds": 0.05}}
    )
    status_url = response.headers["Location"]
    running = wait_until(lambda: (body := status_of(http, web, status_url))["current"] >= 1 and body)
    request_stop(redis_client, response.json()["id"])
    final = wait_for_state(http, web, status_url, "FAILURE", timeout_s=10)
    assert final["status"] == "stopped"
    assert running["current"] <= final["current"] < 200
