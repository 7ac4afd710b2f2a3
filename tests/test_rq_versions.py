"""The guard against RQ releases the worker was not verified against (`jobs.worker.versions`)."""

import logging

import pytest
import rq

from jobs.worker.versions import VERIFIED_RQ_VERSIONS, UnverifiedRQ, check_rq_version


def test_the_pinned_rq_is_one_the_worker_was_verified_against():
    assert rq.__version__ in VERIFIED_RQ_VERSIONS
    check_rq_version()


def test_another_rq_is_refused_with_its_version_and_the_command_that_verifies_it():
    with pytest.raises(UnverifiedRQ) as refused:
        check_rq_version("3.1.0", environ={})
    message = str(refused.value)
    assert (
        "installed RQ 3.1.0" in message and "make conformance" in message and "RQ_UNVERIFIED_OK=1" in message
    )


def test_the_override_runs_it_and_says_so_in_the_log(caplog):
    with caplog.at_level(logging.WARNING, logger="jobs.worker.versions"):
        check_rq_version("3.1.0", environ={"RQ_UNVERIFIED_OK": "1"})
    assert "RQ 3.1.0" in caplog.text and "RQ_UNVERIFIED_OK=1" in caplog.text


def test_the_worker_refuses_to_start_under_an_unverified_rq(redis, monkeypatch):
    from jobs.worker import Worker
    from jobs.worker import versions as rq_versions

    monkeypatch.setattr(rq_versions, "VERIFIED_RQ_VERSIONS", ("0.0.1",))
    monkeypatch.delenv("RQ_UNVERIFIED_OK", raising=False)
    with pytest.raises(UnverifiedRQ):
        Worker(["default"], connection=redis)
