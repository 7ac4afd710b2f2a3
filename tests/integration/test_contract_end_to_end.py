"""The status contract end to end: HTTP in, a real `rq worker`, HTTP out."""

import time

from rq import Queue

from jobs.callbacks import CALLBACKS
from support.wait import wait_until

TERMINAL = {"SUCCESS", "FAILURE"}


def poll_like_the_tutorial(http, base, status_url, deadline_s=30.0) -> list[dict]:
    """Follow a status URL until the state is neither PENDING nor PROGRESS; return every answer."""
    seen = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        response = http.get(base + status_url, timeout=5)
        assert response.status_code == 200
        seen.append(response.json())
        if seen[-1]["state"] in TERMINAL:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"no terminal state within {deadline_s} s; last: {seen[-1:]}")


def test_tutorial_client_sees_pending_progress_then_success(http, web, worker):
    blocker = http.post(f"{web}/longtask", json={"steps": 3, "step_seconds": 0.2}, timeout=5)
    response = http.post(f"{web}/longtask", json={"steps": 5, "step_seconds": 0.2}, timeout=5)
    assert response.status_code == 202
    status_url = response.headers["Location"]
    assert status_url == f"/status/{response.json()['id']}"

    seen = poll_like_the_tutorial(http, web, status_url)
    states = [answer["state"] for answer in seen]
    assert states[0] == "PENDING"
    assert states.index("PROGRESS") < states.index("SUCCESS")
    progress = [answer["current"] for answer in seen if answer["state"] == "PROGRESS"]
    assert progress == sorted(progress) and progress[-1] > progress[0]
    assert all(answer["total"] == 5 for answer in seen if answer["state"] == "PROGRESS" and answer["current"])
    final = seen[-1]
    assert (final["current"], final["total"], final["result"]) == (100, 100, 42)
    assert final["current"] * 100 // final["total"] == 100
    assert http.get(web + blocker.headers["Location"], timeout=5).json()["state"] == "SUCCESS"


def test_failing_job_gives_failure_with_its_message(http, web, worker, redis_client):
    job = Queue("default", connection=redis_client).enqueue(
        "tests.fixture_jobs.fail",
        "the reactor is out of coolant",
        **CALLBACKS,
    )
    final = poll_like_the_tutorial(http, web, f"/status/{job.id}")[-1]
    assert (final["state"], final["status"]) == ("FAILURE", "the reactor is out of coolant")
    assert "result" not in final and "Traceback" not in str(final)


def test_job_enqueued_with_rqs_api_is_visible(http, web, worker, redis_client):
    job = Queue("low", connection=redis_client).enqueue("jobs.long_task", steps=2, step_seconds=0.05)
    final = poll_like_the_tutorial(http, web, f"/status/{job.id}")[-1]
    assert (final["state"], final["result"]) == ("SUCCESS", 42)


def test_unknown_id_is_404_json(http, web):
    response = http.get(f"{web}/status/never-enqueued", timeout=5)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == 404


def test_progress_is_saved_in_job_meta(http, web, worker, redis_client):
    from rq.job import Job

    response = http.post(f"{web}/longtask", json={"steps": 2, "step_seconds": 0.05}, timeout=5)
    job_id = response.json()["id"]
    wait_until(lambda: http.get(f"{web}/status/{job_id}", timeout=5).json()["state"] == "SUCCESS")
    progress = Job.fetch(job_id, connection=redis_client).get_meta()["progress"]
    assert (progress["current"], progress["total"]) == (1, 2)  # saved as its last step began
