"""The start rate limit: per client address, anonymous starts only, shared through Redis."""

import pytest

from support.apps import UNIT_SETTINGS
from web import create_app


def limited(redis, per_minute=2, **settings):
    return create_app(
        {**UNIT_SETTINGS, "REDIS_CONNECTION": redis, "START_RATE_LIMIT": per_minute, **settings}
    )


def test_anonymous_starts_past_the_limit_are_429_with_retry_after(redis):
    client = limited(redis).test_client()
    assert [client.post("/longtask").status_code for _ in range(2)] == [202, 202]
    for response in (client.post("/longtask"), client.post("/api/jobs", json={"name": "long_task"})):
        assert response.status_code == 429
        assert response.get_json()["error"]["code"] == 429
        assert 0 < int(response.headers["Retry-After"]) <= 60
    assert len(redis.keys("rq:job:*")) == 2


def test_two_web_processes_share_the_count(redis):
    first, second = limited(redis).test_client(), limited(redis).test_client()
    assert first.post("/longtask").status_code == 202
    assert second.post("/longtask").status_code == 202
    assert first.post("/longtask").status_code == 429


def test_each_address_has_its_own_count(redis):
    client = limited(redis, per_minute=1).test_client()
    assert client.post("/longtask", environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code == 202
    assert client.post("/longtask", environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 202
    assert client.post("/longtask", environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code == 429


def test_starts_with_a_token_and_reads_are_not_counted(redis, make_token):
    client = limited(redis, per_minute=1).test_client()
    headers = make_token("start:*")
    assert [client.post("/longtask", headers=headers).status_code for _ in range(3)] == [202] * 3
    assert client.post("/longtask").status_code == 202
    assert client.get("/api/jobs").status_code == 200
    assert client.post("/longtask").status_code == 429


def test_zero_turns_it_off(redis):
    client = limited(redis, per_minute=0).test_client()
    assert {client.post("/longtask").status_code for _ in range(5)} == {202}


@pytest.mark.parametrize(("proxies", "separate"), [(0, False), (1, True)])
def test_behind_a_trusted_proxy_the_forwarded_address_counts(redis, proxies, separate):
    client = limited(redis, per_minute=1, TRUSTED_PROXIES=proxies).test_client()
    assert client.post("/longtask", headers={"X-Forwarded-For": "203.0.113.1"}).status_code == 202
    second = client.post("/longtask", headers={"X-Forwarded-For": "203.0.113.2"}).status_code
    assert second == (202 if separate else 429)


def test_the_counters_are_under_the_project_prefix(redis):
    limited(redis).test_client().post("/longtask")
    assert redis.keys("rq-progress:rate-limit*")
