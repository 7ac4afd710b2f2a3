"""Groups end to end: real worker, real web; a group rising to SUCCESS, one with a failed job, cancel."""

import requests

from support.sse import read_json_events
from support.wait import wait_until

# 202 while a stop is on its way; 200 if the worker had already stored it when the answer was made.
CANCEL_ANSWERED = (200, 202)


def demo(steps: int) -> dict:
    return {"name": "long_task", "args": {"steps": steps, "step_seconds": 0.1}}


def start_group(http, web, *jobs: dict) -> dict:
    """Start a group as a browser does, after loading the page (its identity: only it may cancel)."""
    assert http.get(f"{web}/", timeout=5).status_code == 200
    response = http.post(f"{web}/api/groups", json={"jobs": list(jobs)}, timeout=5)
    assert response.status_code == 202
    return response.json()


def follow(web: str, events_url: str) -> list[dict]:
    with requests.get(web + events_url, stream=True, timeout=30) as response:
        assert response.status_code == 200
        return read_json_events(response.iter_content(chunk_size=None))


def test_a_groups_bar_rises_to_success(http, web, worker):
    started = start_group(http, web, demo(3), demo(3), demo(3))
    events = follow(web, started["events_url"])
    assert (events[-1]["state"], events[-1]["current"], events[-1]["done"]) == ("SUCCESS", 3, 3)
    currents = [event["current"] for event in events]
    assert currents == sorted(currents) and len(set(currents)) >= 4


def test_a_group_with_a_failed_job_ends_in_failure_after_the_others(http, web, worker):
    started = start_group(http, web, demo(60), demo(2))
    first = started["jobs"][0]
    wait_until(lambda: http.get(web + first["status_url"], timeout=5).json()["state"] == "PROGRESS")
    assert http.post(web + first["cancel_url"], timeout=5).status_code in CANCEL_ANSWERED
    final = follow(web, started["events_url"])[-1]
    assert (final["state"], final["done"], final["failed"]) == ("FAILURE", 2, 1)
    assert [(job["state"], job["status"]) for job in final["jobs"]] == [
        ("FAILURE", "stopped"),
        ("SUCCESS", "Task completed!"),
    ]


def test_cancelling_a_group_ends_every_job_in_it(http, web, worker):
    started = start_group(http, web, demo(60), demo(60), demo(60))
    first = started["jobs"][0]
    wait_until(lambda: http.get(web + first["status_url"], timeout=5).json()["state"] == "PROGRESS")
    assert http.post(web + started["cancel_url"], timeout=5).status_code in CANCEL_ANSWERED
    final = follow(web, started["events_url"])[-1]
    assert (final["state"], final["failed"]) == ("FAILURE", 3)
    assert [job["status"] for job in final["jobs"]] == ["stopped", "canceled", "canceled"]
    assert http.post(web + started["cancel_url"], timeout=5).status_code == 409
