import pytest

from jobs import idempotency
from jobs.keys import idempotency_key


def test_first_claim_wins_and_later_ones_read_its_job(redis):
    assert idempotency.claim(redis, "k", "fp", "job-1") is None
    redis.set("rq:job:job-1", "x")
    assert idempotency.claim(redis, "k", "fp", "job-2") == "job-1"


def test_a_claim_whose_request_died_before_enqueuing_never_answers_a_job_that_does_not_exist(
    redis, monkeypatch
):
    monkeypatch.setattr(idempotency, "IN_FLIGHT_WAIT_S", 0.05)
    assert idempotency.claim(redis, "k", "fp", "job-1") is None  # then the web process is killed
    assert 0 < redis.ttl(idempotency_key("k")) <= idempotency.IN_FLIGHT_TTL_S
    with pytest.raises(idempotency.IdempotencyInFlight):
        idempotency.claim(redis, "k", "fp", "job-2")
    redis.delete(idempotency_key("k"))  # what the claim's short TTL does
    assert idempotency.claim(redis, "k", "fp", "job-3") is None


def test_a_confirmed_claim_answers_its_job_even_after_the_job_expired(redis):
    idempotency.claim(redis, "k", "fp", "job-1")
    idempotency.confirm(redis, "k")
    assert idempotency.claim(redis, "k", "fp", "job-2") == "job-1"


def test_release_gives_back_only_its_own_claim(redis):
    idempotency.claim(redis, "k", "fp", "job-1")
    idempotency.release(redis, "k", "job-2")
    assert redis.exists(idempotency_key("k"))
    idempotency.release(redis, "k", "job-1")
    assert not redis.exists(idempotency_key("k"))


def test_the_key_is_stored_hashed_for_a_day_once_its_job_is_enqueued(redis):
    idempotency.claim(redis, "order-17", "fp", "job-1")
    idempotency.confirm(redis, "order-17")
    (stored,) = redis.keys("rq-progress:idempotency:*")
    assert b"order-17" not in stored
    assert idempotency.IN_FLIGHT_TTL_S < redis.ttl(stored) <= idempotency.KEY_TTL_S


def test_a_different_request_under_the_same_key_is_a_conflict(redis):
    idempotency.claim(redis, "k", idempotency.fingerprint({"a": 1}), "job-1")
    with pytest.raises(idempotency.IdempotencyConflict):
        idempotency.claim(redis, "k", idempotency.fingerprint({"a": 2}), "job-2")


def test_fingerprint_ignores_key_order():
    assert idempotency.fingerprint({"a": 1, "b": 2}) == idempotency.fingerprint({"b": 2, "a": 1})
