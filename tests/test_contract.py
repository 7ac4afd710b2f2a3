import pytest
from rq.job import JobStatus

from jobs import contract
from jobs.contract import FAILURE, PENDING, PROGRESS, SUCCESS, short_error, to_payload

EXPECTED_STATE = {
    "created": PENDING,
    "queued": PENDING,
    "deferred": PENDING,
    "scheduled": PENDING,
    "ready_to_enqueue": PENDING,
    "rate_limited": PENDING,
    "started": PROGRESS,
    "finished": SUCCESS,
    "failed": FAILURE,
    "stopped": FAILURE,
    "canceled": FAILURE,
}


def test_every_installed_rq_status_is_mapped():
    assert set(contract.STATE_BY_STATUS) == set(JobStatus)
    assert {status.value for status in JobStatus} == set(EXPECTED_STATE)


@pytest.mark.parametrize("status", list(JobStatus), ids=lambda status: status.value)
def test_status_maps_to_its_contract_state(status):
    payload = to_payload("j1", status, {})
    assert payload["state"] == EXPECTED_STATE[status.value]
    assert set(payload) >= {"id", "state", "current", "total", "status", "updated_at"}
    assert ("result" in payload) == (payload["state"] == SUCCESS)


def test_unknown_status_is_pending_and_logged(caplog):
    assert contract.state_for("teleported") == PENDING
    assert "teleported" in caplog.text


def test_started_job_without_meta_is_progress_zero():
    payload = to_payload("j1", JobStatus.STARTED, None)
    assert (payload["state"], payload["current"], payload["total"]) == (PROGRESS, 0, 1)


def test_progress_comes_from_meta():
    meta = {"progress": {"current": 3, "total": 7, "status": "Loading bit...", "updated_at": "T"}}
    payload = to_payload("j1", JobStatus.STARTED, meta)
    assert payload == {
        "id": "j1",
        "state": PROGRESS,
        "current": 3,
        "total": 7,
        "status": "Loading bit...",
        "updated_at": "T",
    }


def test_tutorial_shaped_result_is_unpacked():
    result = {"current": 100, "total": 100, "status": "Task completed!", "result": 42}
    payload = to_payload("j1", JobStatus.FINISHED, {}, result=result)
    assert (payload["current"], payload["total"], payload["status"], payload["result"]) == (
        100,
        100,
        "Task completed!",
        42,
    )


def test_plain_result_fills_the_bar():
    meta = {"progress": {"current": 9, "total": 10, "status": "x"}}
    payload = to_payload("j1", JobStatus.FINISHED, meta, result={"counted": 10})
    assert (payload["current"], payload["total"], payload["result"]) == (10, 10, {"counted": 10})


@pytest.mark.parametrize("status", [JobStatus.STOPPED, JobStatus.CANCELED])
def test_stopped_and_canceled_say_so(status):
    payload = to_payload("j1", status, {"error": "ignored"})
    assert payload["status"] == status.value
    assert "result" not in payload


def test_failure_prefers_the_message_the_callback_kept():
    payload = to_payload("j1", JobStatus.FAILED, {"error": "disk full"}, error="OSError")
    assert payload["status"] == "disk full"


TRACEBACK = """Traceback (most recent call last):
  File "/x/rq/job.py", line 1, in perform
    return self.func()
  File "/x/tests/fixture_jobs.py", line 9, in fail
    raise ValueError(message)
ValueError: the disk is on fire
"""


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (TRACEBACK, "the disk is on fire"),
        ("Traceback...\nKeyError", "KeyError"),
        ("Traceback...\nbuiltins.KeyError", "KeyError"),
        ("Moved to FailedJobRegistry, due to AbandonedJobError, at 2026", contract.WORKER_LOST_STATUS),
        ("Work-horse terminated unexpectedly; waitpid returned 9 (signal 9); ", contract.WORKER_LOST_STATUS),
        (
            "rq.timeouts.JobTimeoutException: Task exceeded maximum timeout value (1 seconds)",
            "Task exceeded maximum timeout value (1 seconds)",
        ),
        ("", "failed"),
        (None, "failed"),
        ("x" * 500, "x" * contract.MAX_ERROR_CHARS),
    ],
)
def test_short_error_keeps_the_message_never_the_traceback(stored, expected):
    assert short_error(stored) == expected


def test_abandoned_job_error_says_the_worker_was_lost():
    from rq.exceptions import AbandonedJobError

    assert contract.exception_message(AbandonedJobError()).startswith("worker lost: ")


def test_isoformat_is_utc_with_microseconds():
    from datetime import UTC, datetime

    assert contract.isoformat(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2026-01-02T03:04:05.000006Z"
    assert contract.isoformat(None) is None
