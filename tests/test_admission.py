"""Starts: the waiting cap checked atomically with RQ's own writes, in at most two round trips."""

import re
from contextlib import contextmanager
from datetime import timedelta

import pytest
from redis.connection import AbstractConnection
from rq import Queue
from rq.job import Job

from jobs.callbacks import CALLBACKS, initial_meta
from jobs.registry import QueueFull, get_spec, start_job
from support.apps import UNIT_SETTINGS
from tests.helpers import open_page
from web import create_app


@contextmanager
def round_trips(monkeypatch):
    """Count what is sent to Redis: one packed send per command, or per whole pipeline."""
    sent: list[list[str]] = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        packed = b"".join(command) if isinstance(command, list) else command
        sent.append([name.decode() for name in re.findall(rb"\r\n([A-Z]{3,})\r\n", b"\r\n" + packed)])
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    yield sent
    monkeypatch.setattr(AbstractConnection, "send_packed_command", original)


def test_the_cap_counts_delayed_jobs(redis):
    start_job(redis, "long_task", {}, delay_s=0.001, max_queued=2)
    start_job(redis, "long_task", {}, delay_s=60, max_queued=2)
    with pytest.raises(QueueFull):
        start_job(redis, "long_task", {}, delay_s=0.001, max_queued=2)
    with pytest.raises(QueueFull):
        start_job(redis, "long_task", {}, max_queued=2)


def test_a_refused_start_leaves_nothing_behind(redis):
    start_job(redis, "long_task", {}, max_queued=1)
    start_job(redis, "long_task", {}, delay_s=5)
    before = {key: redis.type(key) for key in redis.keys("*")}
    lists = redis.lrange("rq:queue:default", 0, -1), redis.zrange("rq:scheduled:default", 0, -1)
    for delay_s in (0, 5):
        with pytest.raises(QueueFull):
            start_job(redis, "long_task", {}, delay_s=delay_s, max_queued=1, idempotency_key=f"k{delay_s}")
    assert {key: redis.type(key) for key in redis.keys("*")} == before
    assert (redis.lrange("rq:queue:default", 0, -1), redis.zrange("rq:scheduled:default", 0, -1)) == lists


@pytest.mark.parametrize("delay_s", [0, 30])
def test_redis_holds_what_rqs_own_enqueue_writes(redis, delay_s):
    spec = get_spec("long_task")
    ours = start_job(redis, "long_task", {"steps": 3}, delay_s=delay_s, owner="token:t")
    options = {
        "kwargs": {"steps": 3, "step_seconds": 1.0},
        "job_timeout": spec.timeout_s,
        "result_ttl": spec.result_ttl_s,
        "meta": initial_meta(owner="token:t", size=3.0),
        "description": "long_task",
        **CALLBACKS,
    }
    queue = Queue("default", connection=redis)
    if delay_s:
        theirs = queue.enqueue_in(timedelta(seconds=delay_s), spec.func, **options)
    else:
        theirs = queue.enqueue(spec.func, **options)
    mine, other = redis.hgetall(ours.key), redis.hgetall(theirs.key)
    assert mine.keys() == other.keys()
    moments = {b"created_at", b"enqueued_at"}
    assert {k: v for k, v in mine.items() if k not in moments} == {
        k: v for k, v in other.items() if k not in moments
    }
    assert redis.ttl(ours.key) == redis.ttl(theirs.key)
    assert {
        key.replace(theirs.id.encode(), b"ID") for key in redis.keys("*") if theirs.id.encode() in key
    } == {key.replace(ours.id.encode(), b"ID") for key in redis.keys("*") if ours.id.encode() in key}
    if delay_s:
        # RQ scores by whole seconds: both may share a score, so the order is not ours to check.
        assert set(redis.zrange("rq:scheduled:default", 0, -1)) == {ours.id.encode(), theirs.id.encode()}
    else:
        assert Queue("default", connection=redis).job_ids == [ours.id, theirs.id]
    assert (
        Job.fetch(ours.id, connection=redis).get_status()
        == Job.fetch(theirs.id, connection=redis).get_status()
    )


@pytest.fixture
def limited_app(redis):
    """The app with the start rate limit on, as deployed."""
    # RQ asks a server its version once per client and caches it; fakeredis's INFO lacks the
    # version, so RQ would ask again at every start: cache it as a real server's answer would be.
    setattr(redis, "__rq_redis_server_version", (7, 2, 4))
    app = create_app({**UNIT_SETTINGS, "REDIS_CONNECTION": redis, "START_RATE_LIMIT": 60})
    app.test_client().post("/longtask")  # pooled connections say hello, the limiter loads its script
    return app


@pytest.mark.parametrize("idempotency_key", [None, "order-1"])
def test_an_anonymous_start_takes_two_round_trips(limited_app, monkeypatch, idempotency_key):
    client = limited_app.test_client()
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    with round_trips(monkeypatch) as sent:
        assert client.post("/longtask", json={"steps": 2}, headers=headers).status_code == 202
    assert len(sent) == 2, sent


def test_a_start_with_a_token_takes_two_round_trips(limited_app, make_token, monkeypatch):
    client, headers = limited_app.test_client(), make_token("start:send_email")
    body = {"name": "send_email", "args": {"to": ["a@example.com"], "subject": "hi"}}
    with round_trips(monkeypatch) as sent:
        assert client.post("/api/jobs", json=body, headers=headers).status_code == 202
    assert len(sent) == 2, sent


def test_a_browser_start_takes_two_round_trips_and_keeps_its_list(limited_app, monkeypatch):
    client = limited_app.test_client()
    open_page(client)
    with round_trips(monkeypatch) as sent:
        response = client.post("/longtask")
    assert response.status_code == 202 and "set-cookie" in response.headers
    assert len(sent) == 2, sent
    # The enqueue's transaction also records the row for the browser's stream and announces it.
    assert {"ZADD", "ZREMRANGEBYRANK", "EXPIRE", "PUBLISH"} <= set(sent[-1])
