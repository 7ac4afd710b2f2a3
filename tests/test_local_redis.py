"""Claiming a database of the shared local Redis (support.local_redis), on fakeredis."""

from types import SimpleNamespace

import fakeredis
import pytest

from support import local_redis
from support.local_redis import LOCK_KEY, OWNER_KEY, claim_local_database


@pytest.fixture
def server(monkeypatch) -> fakeredis.FakeServer:
    """One fake server whose databases `claim_local_database` sees as the local Redis's."""
    server = fakeredis.FakeServer()

    def from_url(url: str) -> fakeredis.FakeRedis:
        return fakeredis.FakeRedis(server=server, db=int(url.rsplit("/", 1)[1]))

    monkeypatch.setattr(local_redis, "Redis", SimpleNamespace(from_url=from_url))
    return server


def test_claims_take_databases_from_15_down_each_under_its_own_lock(server):
    first, second = claim_local_database("redis://x"), claim_local_database("redis://x")
    assert (first.db, second.db) == (15, 14)
    assert first.client.get(LOCK_KEY) == first.token.encode()
    assert first.url == "redis://x/15"


def test_a_database_holding_someone_elses_data_is_skipped_and_left_alone(server):
    other = fakeredis.FakeRedis(server=server, db=15)
    other.set("theirs", "1")
    assert claim_local_database("redis://x").db == 14
    assert other.keys() == [b"theirs"]


def test_a_database_left_by_an_earlier_run_of_ours_is_emptied_and_taken(server):
    earlier = fakeredis.FakeRedis(server=server, db=15)
    earlier.set(OWNER_KEY, "1")
    earlier.set("rq:job:x", "1")
    claimed = claim_local_database("redis://x")
    assert claimed.db == 15
    assert sorted(earlier.keys()) == sorted([OWNER_KEY.encode(), LOCK_KEY.encode()])


def test_flush_keeps_the_claim_and_release_gives_it_up(server):
    claimed = claim_local_database("redis://x")
    claimed.client.set("rq:job:x", "1")
    claimed.flush()
    assert claimed.client.get(LOCK_KEY) == claimed.token.encode()
    assert claimed.client.exists("rq:job:x", OWNER_KEY) == 1
    claimed.release()
    assert claimed.client.keys() == [OWNER_KEY.encode()]
    assert claim_local_database("redis://x").db == 15
