import email

import pytest
from rq import Retry

from jobs.callbacks import CALLBACKS, initial_meta
from jobs.mail import parse_smtp_url, send_email
from jobs.snapshot import snapshot
from tests.smtp_server import smtp_server


@pytest.fixture
def inbox(monkeypatch):
    with smtp_server() as inbox:
        monkeypatch.setenv("SMTP_URL", inbox.url)
        yield inbox


def test_one_message_per_recipient_outside_a_job(inbox):
    assert send_email(["a@example.com", "b@example.org"], "Hello", "Body text") == {
        "sent": 2,
        "recipients": 2,
    }
    assert [rcpts for rcpts, _ in inbox.messages] == [["a@example.com"], ["b@example.org"]]
    message = email.message_from_bytes(inbox.messages[0][1])
    assert (message["Subject"], message["To"], message.get_payload().strip()) == (
        "Hello",
        "a@example.com",
        "Body text",
    )


def test_job_reports_progress_per_recipient(inbox, redis, queue, run_queued, published, monkeypatch):
    monkeypatch.setenv("PROGRESS_MAX_SAVES_PER_S", "0")
    job = queue.enqueue("jobs.mail.send_email", ["a@x.org", "b@x.org", "c@x.org"], "Hi", **CALLBACKS)
    run_queued()
    events = published()
    assert [(event["current"], event["status"]) for event in events[1:-1]] == [
        (1, "sent to a@x.org"),
        (2, "sent to b@x.org"),
        (3, "sent to c@x.org"),
    ]
    assert len(inbox.messages) == 3
    assert (events[-1]["state"], events[-1]["result"]) == ("SUCCESS", {"sent": 3, "recipients": 3})
    assert events[-1] == snapshot(job.id, redis)


def test_unreachable_server_fails_with_a_readable_message(redis, queue, run_queued, monkeypatch):
    from support.servers import free_port

    monkeypatch.setenv("SMTP_URL", f"smtp://127.0.0.1:{free_port()}")
    job = queue.enqueue("jobs.mail.send_email", ["a@x.org"], "Hi", **CALLBACKS)
    run_queued()
    final = snapshot(job.id, redis)
    assert final["state"] == "FAILURE" and "refused" in final["status"].lower()


def test_retry_resumes_after_the_recipients_already_sent(inbox, redis, queue, run_queued):
    job = queue.enqueue(
        "jobs.mail.send_email",
        ["a@x.org", "b@x.org"],
        "Hi",
        retry=Retry(max=1),
        meta=initial_meta(1),
        **CALLBACKS,
    )
    job.meta["progress"] = {"current": 1, "total": 2, "status": "sent to a@x.org"}
    job.save_meta()
    run_queued()
    assert [rcpts for rcpts, _ in inbox.messages] == [["b@x.org"]]
    assert snapshot(job.id, redis)["result"] == {"sent": 1, "recipients": 2}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", ("mail.example.com", 25, False, False, None)),
        ("smtps://u%40x:p%2Fw@mail.example.com", ("mail.example.com", 465, True, False, "u@x")),
        ("smtp://h:2525?starttls=1", ("h", 2525, False, True, None)),
    ],
)
def test_smtp_url_forms(url, expected):
    settings = parse_smtp_url(url)
    assert (settings.host, settings.port, settings.use_ssl, settings.starttls, settings.username) == expected


@pytest.mark.parametrize("url", [None, "", "http://h", "smtp://"])
def test_bad_smtp_url_says_so(url):
    with pytest.raises(ValueError, match="SMTP_URL"):
        parse_smtp_url(url)
