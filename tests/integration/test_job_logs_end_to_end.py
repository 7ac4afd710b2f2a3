"""Job logs end to end: a real worker's lines streamed, resumed after Last-Event-ID, and captured."""

import requests
from rq import Queue

from jobs.callbacks import CALLBACKS
from support.sse import read_events
from support.wait import wait_until


def open_events(base: str, events_url: str, last_event_id: str | None = None) -> requests.Response:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    response = requests.get(base + events_url, headers=headers, stream=True, timeout=10)
    assert response.status_code == 200
    return response


def is_final(event) -> bool:
    return event.event is None and event.json()["state"] in ("SUCCESS", "FAILURE")


def test_the_demos_log_streams_and_resumes_after_last_event_id(http, web, worker):
    body = http.post(f"{web}/longtask", json={"steps": 6, "step_seconds": 0.2}, timeout=5).json()
    with open_events(web, body["events_url"]) as first:
        seen = []
        for event in read_events(first.iter_content(chunk_size=None), lambda _: len(seen) == 2):
            if event.event == "log":
                seen.append(event)
    with open_events(web, body["events_url"], last_event_id=seen[-1].id) as second:
        rest = list(read_events(second.iter_content(chunk_size=None), is_final))
    assert rest[-1].json()["state"] == "SUCCESS"
    streamed = [event.json() for event in seen + rest if event.event == "log"]
    assert [line["message"].split(":")[0] for line in streamed] == [f"step {n} of 6" for n in range(6)]
    assert [event.id for event in seen + rest if event.event == "log"] == [line["id"] for line in streamed]
    assert http.get(web + body["logs_url"], timeout=5).json()["lines"] == streamed


def test_logging_records_of_a_job_on_the_procfiles_worker_are_captured(http, web, worker, redis_client):
    job = Queue("default", connection=redis_client).enqueue("tests.fixture_jobs.log_records", **CALLBACKS)
    wait_until(lambda: job.get_status(refresh=True) == "finished", what="the job finished")
    lines = http.get(f"{web}/status/{job.id}/logs", timeout=5).json()["lines"]
    assert [(line["level"], line["message"]) for line in lines] == [
        ("info", "fetching page 1"),
        ("warning", "slow answer"),
        ("error", "giving up on page 2 (ValueError: bad page)"),
    ]
