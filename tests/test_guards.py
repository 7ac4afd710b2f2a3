"""The app-wide guards: no state change from another site, JSON bodies only."""

import pytest

from jobs.registry import start_job

CROSS_SITE = [
    {"Origin": "https://evil.example"},
    {"Origin": "http://localhost:8000"},  # same site as localhost, another origin
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
]


@pytest.mark.parametrize("headers", CROSS_SITE)
@pytest.mark.parametrize("path", ["/longtask", "/api/jobs", "/status/some-job/cancel"])
def test_state_changing_requests_from_another_site_are_403_and_start_nothing(client, redis, headers, path):
    response = client.post(path, json={"name": "long_task"}, headers=headers)
    assert response.status_code == 403
    assert "cross-site" in response.get_json()["error"]["message"]
    assert redis.keys("rq:job:*") == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}],
)
def test_same_origin_and_non_browser_clients_pass(client, headers):
    assert client.post("/longtask", headers=headers).status_code == 202


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"steps": 3}', "text/plain"),
        (b"steps=3", "application/x-www-form-urlencoded"),
        (b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x"),
        (b'{"steps": 3}', None),
    ],
)
def test_a_body_that_is_not_json_is_415_and_starts_nothing(client, redis, body, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/longtask", data=body, headers=headers)
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == 415
    assert redis.keys("rq:job:*") == []


def test_an_empty_form_post_still_needs_the_same_origin(client):
    # What a bare cross-site <form method=post> sends: no body, a form type, Origin of its site.
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"}
    assert client.post("/longtask", headers=headers).status_code == 403
    assert (
        client.post("/longtask", headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code
        == 202
    )


def test_reads_are_not_guarded(client, redis):
    job = start_job(redis, "long_task", {"steps": 1})
    response = client.get(f"/status/{job.id}", headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 200
