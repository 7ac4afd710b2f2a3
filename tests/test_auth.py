"""Who may start what, owner-only cancel, and no cookie work for clients without a cookie."""

import pytest
from rq.job import Job

from jobs.control import owner_of
from tests.helpers import open_page, start_demo

EMAIL = {"name": "send_email", "args": {"to": ["a@example.com"], "subject": "hi"}}


def test_a_job_that_needs_a_token_is_401_without_one(client, redis):
    response = client.post("/api/jobs", json=EMAIL)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert "start:send_email" in response.get_json()["error"]["message"]
    assert redis.keys("rq:job:*") == []


@pytest.mark.parametrize("header", ["Bearer rqp_unknown", "Bearer ", "bearer nope"])
def test_unknown_or_malformed_tokens_are_401_even_for_open_jobs(client, header):
    for response in (
        client.post("/api/jobs", json=EMAIL, headers={"Authorization": header}),
        client.post("/longtask", headers={"Authorization": header}),
    ):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")


def test_a_token_without_the_scope_is_403_naming_it(client, make_token, redis):
    response = client.post("/api/jobs", json=EMAIL, headers=make_token("start:long_task", "cancel:any"))
    assert response.status_code == 403
    assert "start:send_email" in response.get_json()["error"]["message"]
    assert redis.keys("rq:job:*") == []


@pytest.mark.parametrize("scope", ["start:send_email", "start:*"])
def test_a_token_with_the_scope_starts_it_and_owns_it(client, make_token, redis, scope):
    response = client.post("/api/jobs", json=EMAIL, headers=make_token(scope, name="mailer"))
    assert response.status_code == 202
    job = Job.fetch(response.get_json()["id"], connection=redis)
    assert owner_of(job) == "token:mailer"
    assert job.description == "send_email"
    assert "set-cookie" not in response.headers


def test_revoked_token_is_401_at_once(client, make_token, redis):
    from web import tokens

    headers = make_token("start:*", name="gone")
    tokens.revoke(redis, "gone")
    assert client.post("/api/jobs", json=EMAIL, headers=headers).status_code == 401


def test_the_catalog_says_who_may_start_each_job(client):
    jobs = {job["name"]: job for job in client.get("/api/jobs").get_json()["jobs"]}
    assert jobs["long_task"]["anonymous"] is True and jobs["send_email"]["anonymous"] is False
    assert jobs["send_email"]["scopes"] == ["start:send_email", "start:*"]


def test_a_client_without_a_cookie_gets_none_and_owns_nothing(client, redis):
    response = client.post("/longtask")
    assert response.status_code == 202
    assert "set-cookie" not in response.headers
    assert owner_of(Job.fetch(response.get_json()["id"], connection=redis)) is None


def test_a_job_described_by_its_name_only(client, redis):
    job_id = client.post("/longtask", json={"steps": 2, "step_seconds": 0}).get_json()["id"]
    assert Job.fetch(job_id, connection=redis).description == "long_task"


def test_the_browser_that_started_a_job_cancels_it(client):
    open_page(client)
    job = start_demo(client, steps=2, step_seconds=0)
    assert client.post(job["cancel_url"]).status_code == 200


def test_another_browser_cannot_cancel_it_and_nothing_changes(app, client):
    open_page(client)
    job = start_demo(client, steps=2, step_seconds=0)
    other = app.test_client()
    open_page(other)
    for stranger in (other, app.test_client()):
        response = stranger.post(job["cancel_url"])
        assert response.status_code == 403
        assert "cancel:any" in response.get_json()["error"]["message"]
    assert client.get(job["status_url"]).get_json()["state"] == "PENDING"


def test_a_token_cancels_what_it_started_and_not_what_others_did(app, client, make_token):
    mine, theirs = make_token("start:*", name="mine"), make_token("start:*", name="theirs")
    started = client.post("/api/jobs", json={"name": "long_task"}, headers=mine).get_json()
    assert client.post(started["cancel_url"], headers=theirs).status_code == 403
    assert client.post(started["cancel_url"]).status_code == 403
    assert client.post(started["cancel_url"], headers=mine).status_code == 200


def test_cancel_any_cancels_anyones_job(client, make_token):
    open_page(client)
    job = start_demo(client, steps=2, step_seconds=0)
    assert client.post(job["cancel_url"], headers=make_token("cancel:any")).status_code == 200


def test_status_by_id_stays_open_to_anyone(app, client):
    open_page(client)
    job = start_demo(client, steps=2, step_seconds=0)
    assert app.test_client().get(job["status_url"]).status_code == 200


def test_a_client_without_a_cookie_costs_no_cookie_signing(app, client, monkeypatch):
    def no_signing(*args):
        raise AssertionError("the session signer was built for a request without a cookie")

    monkeypatch.setattr(type(app.session_interface), "get_signing_serializer", no_signing)
    assert client.post("/longtask").status_code == 202
    assert client.get("/api/jobs").status_code == 200


def test_an_event_stream_never_sends_back_a_session_it_did_not_change(client):
    client.get("/")  # a browser identity, in a permanent session
    opened = client.get("/events", headers={"Origin": "http://localhost"})
    assert opened.mimetype == "text/event-stream"
    assert "Set-Cookie" not in opened.headers
    assert "Set-Cookie" in client.get("/").headers  # the page refreshes it, as Flask does
