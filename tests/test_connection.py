"""Where Redis is: one parser of the settings and one builder of clients for the web and the worker."""

import pytest
from redis import BlockingConnectionPool
from rq.cli.helpers import get_redis_from_config

from jobs.connection import (
    BlockingSentinelConnectionPool,
    RedisSettingsError,
    RedisTarget,
    SentinelConnection,
    check_sentinels,
    connect,
    rq_settings,
    target_from,
)
from support.servers import free_port
from web import create_app

SENTINELS = {"REDIS_SENTINELS": "10.0.0.1:26379, sentinel-b:26380", "REDIS_SENTINEL_MASTER": "jobs"}


def test_sentinel_settings_name_the_sentinels_master_password_and_database():
    target = target_from({**SENTINELS, "REDIS_PASSWORD": "pw", "REDIS_DB": "3", "SENTINEL_PASSWORD": "spw"})
    assert target == RedisTarget(
        sentinels=(("10.0.0.1", 26379), ("sentinel-b", 26380)),
        master="jobs",
        password="pw",
        db=3,
        sentinel_password="spw",
    )
    assert target.describe() == "sentinel://10.0.0.1:26379,sentinel-b:26380/jobs (db 3)"


def test_a_url_is_described_without_its_password():
    target = target_from({"REDIS_URL": "redis://:secret@redis.internal:6380/2"})
    assert not target.uses_sentinel
    assert target.describe() == "redis://redis.internal:6380/2"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({}, "REDIS_URL"),
        ({"REDIS_URL": "redis://h", **SENTINELS}, "not both"),
        ({"REDIS_SENTINELS": "h:1"}, "REDIS_SENTINEL_MASTER"),
        ({**SENTINELS, "REDIS_SENTINELS": "h:1,h2"}, "REDIS_SENTINELS"),
        ({**SENTINELS, "REDIS_SENTINELS": "h:99999"}, "REDIS_SENTINELS"),
        ({**SENTINELS, "REDIS_DB": "one"}, "REDIS_DB"),
        ({"REDIS_URL": "redis://h", "REDIS_DB": "1"}, "REDIS_DB"),
        ({"REDIS_URL": "http://h"}, "REDIS_URL"),
    ],
)
def test_bad_settings_fail_with_a_sentence_naming_the_variable(settings, named):
    with pytest.raises(RedisSettingsError, match=named):
        target_from(settings)


def test_web_client_on_sentinel_waits_for_a_free_connection_and_never_retries():
    client = connect(target_from(SENTINELS), timeout_s=1.5, max_connections=7)
    pool = client.connection_pool
    assert isinstance(pool, BlockingSentinelConnectionPool)
    assert (pool.max_connections, pool.timeout) == (7, 1.5)
    assert pool.connection_class is SentinelConnection
    assert pool.connection_kwargs["retry"].get_retries() == 0
    assert pool.connection_kwargs["socket_timeout"] == 1.5


def test_web_client_on_a_url_never_retries():
    pool = connect(target_from({"REDIS_URL": "redis://127.0.0.1:1/4"}), timeout_s=2).connection_pool
    assert isinstance(pool, BlockingConnectionPool)
    assert pool.connection_kwargs["db"] == 4
    assert pool.connection_kwargs["retry"].get_retries() == 0


def test_worker_settings_give_rq_the_same_sentinel_primary_riding_out_a_failover():
    settings = rq_settings(target_from({**SENTINELS, "REDIS_DB": "2", "REDIS_PASSWORD": "pw"}))
    assert settings["REDIS_URL"] is None
    client = get_redis_from_config(settings)  # what `rq worker -c jobs.worker.settings` does
    pool = client.connection_pool
    assert pool.service_name == "jobs" and pool.connection_class is SentinelConnection
    assert (pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == (2, "pw")
    assert pool.connection_kwargs["retry"].get_retries() > 0
    sentinel = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
    assert (sentinel["host"], sentinel["port"]) == ("10.0.0.1", 26379)
    assert sentinel["retry"].get_retries() == 0


def test_worker_settings_on_a_url_are_the_url():
    settings = rq_settings(target_from({"REDIS_URL": "redis://h:1/0"}))
    assert settings == {"REDIS_URL": "redis://h:1/0", "SENTINEL": None}


def test_unreachable_sentinels_stop_the_web_at_start_with_a_sentence_naming_them():
    nobody = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    with pytest.raises(RedisSettingsError, match="no sentinel in REDIS_SENTINELS answered"):
        check_sentinels(target_from({**SENTINELS, "REDIS_SENTINELS": nobody}), timeout_s=0.5)
    with pytest.raises(RuntimeError, match="REDIS_SENTINELS"):
        create_app({"SECRET_KEY": "k", "REDIS_SENTINELS": nobody, "REDIS_SENTINEL_MASTER": "jobs"})
