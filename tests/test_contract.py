from datetime import UTC, datetime, timedelta

import pytest
from rq.job import JobStatus

from jobs import contract
from jobs.contract import FAILURE, PENDING, PROGRESS, SUCCESS, isoformat, short_error, to_payload
from jobs.estimate import fold

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
        "remaining_s": None,
        "stalled": False,
    }


NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def running(seconds_ago: float, **meta) -> dict:
    """A PROGRESS payload for a job whose last save was `seconds_ago` before NOW."""
    saved = isoformat(NOW - timedelta(seconds=seconds_ago))
    rate = fold(fold(fold(None, 1, 0.0), 2, 2.0), 3, 4.0)
    progress = {"current": 3, "total": 10, "status": "Loading bit...", "updated_at": saved, "rate": rate}
    return to_payload("j1", JobStatus.STARTED, {"progress": progress, **meta}, now=NOW)


def test_a_running_job_says_how_long_is_left_from_its_rate():
    payload = running(1)
    assert (payload["remaining_s"], payload["stalled"]) == (14.0, False)
    assert "rate" not in payload


@pytest.mark.parametrize(
    ("seconds_ago", "meta", "status"),
    [
        (120, {}, "no progress for 2 min"),
        (3 * 3600 + 61, {}, "no progress for 3 h 1 min"),
        (45, {"stall_after_s": 30}, "no progress for 45 s"),
    ],
)
def test_a_job_quiet_past_its_stall_after_s_is_stalled_not_failed(seconds_ago, meta, status):
    payload = running(seconds_ago, **meta)
    assert (payload["state"], payload["stalled"], payload["status"]) == (PROGRESS, True, status)
    assert payload["remaining_s"] is None


def test_a_job_quiet_for_less_than_its_stall_after_s_is_not_stalled():
    assert running(119)["stalled"] is False
    assert running(100, stall_after_s=600)["stalled"] is False


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.FINISHED, JobStatus.FAILED])
def test_only_running_jobs_carry_time_left_and_stalled(status):
    payload = to_payload("j1", status, {"progress": {"updated_at": "2020-01-01T00:00:00Z"}}, now=NOW)
    assert "remaining_s" not in payload and "stalled" not in payload


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
    assert contract.isoformat(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2026-01-02T03:04:05.000006Z"
    assert contract.isoformat(None) is None


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_scheduled_job_carries_its_eta():
    payload = to_payload("j1", JobStatus.SCHEDULED, {}, eta=NOW + timedelta(seconds=30), now=NOW)
    assert (payload["state"], payload["status"], payload["eta"]) == (
        PENDING,
        "Pending...",
        "2026-01-02T03:04:35.000000Z",
    )


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.STARTED, JobStatus.FINISHED])
def test_only_a_job_with_an_eta_has_one(status):
    assert "eta" not in to_payload("j1", status, {})


@pytest.mark.parametrize(
    ("eta_s", "expected"),
    [
        (10, "retrying 2/3 in 10 s"),
        (9.2, "retrying 2/3 in 10 s"),
        (0, "retrying 2/3"),
        (None, "retrying 2/3"),
    ],
)
def test_waiting_retry_says_which_attempt_and_when(eta_s, expected):
    eta = None if eta_s is None else NOW + timedelta(seconds=eta_s)
    meta = {"retry": {"attempt": 2, "max": 3}, "error": "boom"}
    payload = to_payload("j1", JobStatus.SCHEDULED, meta, eta=eta, now=NOW)
    assert (payload["state"], payload["status"]) == (PENDING, expected)


def test_retry_meta_before_any_failure_says_pending():
    assert to_payload("j1", JobStatus.QUEUED, {"retry": {"attempt": 0, "max": 3}})["status"] == "Pending..."


def test_final_failure_after_retries_reports_the_last_error():
    meta = {"retry": {"attempt": 3, "max": 3}, "error": "attempt 4 failed"}
    assert to_payload("j1", JobStatus.FAILED, meta)["status"] == "attempt 4 failed"


def test_readme_contract_table_matches_the_mapping():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    documented = {}
    for line in readme.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 3 and cells[1].strip("`") in {PENDING, PROGRESS, SUCCESS, FAILURE}:
            for status in cells[0].split(","):
                documented[status.strip()] = cells[1].strip("`")
    assert documented == EXPECTED_STATE
    pending_row = next(line for line in readme.splitlines() if line.startswith("| created"))
    assert "retrying 2/3 in 10 s" in pending_row and "`eta`" in pending_row


def member(job_id: str, status: JobStatus, current: float = 0, total: float = 1, **meta) -> dict:
    progress = {"current": current, "total": total, "status": "working", "updated_at": isoformat(NOW)}
    return to_payload(job_id, status, {"progress": progress, **meta}, now=NOW)


@pytest.mark.parametrize(
    ("statuses", "state", "status"),
    [
        ([JobStatus.QUEUED, JobStatus.SCHEDULED], PENDING, "Pending..."),
        ([JobStatus.QUEUED, JobStatus.STARTED], PROGRESS, "0 of 2 jobs done"),
        ([JobStatus.FINISHED, JobStatus.QUEUED], PROGRESS, "1 of 2 jobs done"),
        ([JobStatus.FAILED, JobStatus.STARTED], PROGRESS, "1 of 2 jobs done, 1 failed"),
        ([JobStatus.FINISHED, JobStatus.FINISHED], SUCCESS, "all 2 jobs done"),
        ([JobStatus.FINISHED, JobStatus.STOPPED], FAILURE, "2 of 2 jobs done, 1 failed"),
    ],
)
def test_a_groups_state_follows_its_jobs(statuses, state, status):
    payload = contract.to_group_payload("g1", [member(f"j{n}", s) for n, s in enumerate(statuses)])
    assert (payload["state"], payload["status"], payload["total"]) == (state, status, 2)


def test_a_groups_current_is_the_sum_of_its_jobs_fractions_done():
    members = [
        member("a", JobStatus.FINISHED, 3, 10),
        member("b", JobStatus.STARTED, 5, 10),
        member("c", JobStatus.FAILED, 1, 4),
        member("d", JobStatus.QUEUED),
    ]
    payload = contract.to_group_payload("g1", members)
    assert (payload["current"], payload["total"], payload["done"], payload["failed"]) == (1.75, 4, 2, 1)
    assert payload["jobs"][1] == {
        "id": "b",
        "state": PROGRESS,
        "current": 5,
        "total": 10,
        "status": "working",
    }
    assert [job["id"] for job in payload["jobs"]] == ["a", "b", "c", "d"]


def test_a_pending_payload_says_its_place_in_line_and_null_without_one():
    line = {"position": 3, "expected_start_s": 40.0}
    payload = to_payload("j1", JobStatus.QUEUED, {}, line=line)
    assert (payload["position"], payload["expected_start_s"]) == (3, 40.0)
    payload = to_payload("j1", JobStatus.SCHEDULED, {})
    assert (payload["position"], payload["expected_start_s"]) == (None, None)
    assert "position" not in to_payload("j1", JobStatus.STARTED, {})
