import json

import pytest

from jobs import idempotency
from jobs.keys import idempotency_key


def test_a_claim_is_stored_under_the_hashed_key_for_a_day():
    claim = idempotency.claim("order-17", "fp", "job-1")
    assert claim.key == idempotency_key("order-17") and "order-17" not in claim.key
    assert json.loads(claim.value) == {"job_id": "job-1", "fingerprint": "fp"}
    assert claim.ttl_s == idempotency.KEY_TTL_S


def test_a_replay_reads_the_earlier_job_and_another_request_is_a_conflict():
    stored = idempotency.claim("k", idempotency.fingerprint({"a": 1}), "job-1").value
    assert idempotency.earlier_job_id(stored, idempotency.fingerprint({"a": 1})) == "job-1"
    with pytest.raises(idempotency.IdempotencyConflict):
        idempotency.earlier_job_id(stored, idempotency.fingerprint({"a": 2}))


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "a b"])
def test_bad_keys_are_refused(key):
    with pytest.raises(idempotency.BadIdempotencyKey):
        idempotency.claim(key, "fp", "job-1")


def test_fingerprint_ignores_key_order():
    assert idempotency.fingerprint({"a": 1, "b": 2}) == idempotency.fingerprint({"b": 2, "a": 1})
