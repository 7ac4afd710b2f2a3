import pytest

from jobs import idempotency
from jobs.keys import idempotency_key


def test_first_claim_wins_and_later_ones_read_its_job(redis):
    assert idempotency.claim(redis, "k", "fp", "job-1") is None
    redis.set("rq:job:job-1", "x")
    assert idempotency.claim(redis, "k", "fp", "job-2") == "job-1"


def test_release_gives_back_only_its_own_claim(redis):
    idempotency.claim(redis, "k", "fp", "job-1")
    idempotency.release(redis, "k", "job-2")
    assert redis.exists(idempotency_key("k"))
    idempotency.release(redis, "k", "job-1")
    assert not redis.exists(idempotency_key("k"))


def test_the_key_is_stored_hashed_for_a_day(redis):
    idempotency.claim(redis, "order-17", "fp", "job-1")
    (stored,) = redis.keys("rq-progress:idempotency:*")
    assert b"order-17" not in stored
    assert 0 < redis.ttl(stored) <= idempotency.KEY_TTL_S


def test_a_different_request_under_the_same_key_is_a_conflict(redis):
    idempotency.claim(redis, "k", idempotency.fingerprint({"a": 1}), "job-1")
    with pytest.raises(idempotency.IdempotencyConflict):
        idempotency.claim(redis, "k", idempotency.fingerprint({"a": 2}), "job-2")


def test_fingerprint_ignores_key_order():
    assert idempotency.fingerprint({"a": 1, "b": 2}) == idempotency.fingerprint({"b": 2, "a": 1})
