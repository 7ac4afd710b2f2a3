import logging

import pytest
from rq import Queue, SimpleWorker

from jobs.joblog import lines_after
from jobs.logcapture import LoggingJob


def run_with(redis, job_class) -> str:
    """Run `tests.fixture_jobs.log_records` under a worker with this job class; returns the job id."""
    queue = Queue("default", connection=redis)
    job = queue.enqueue("tests.fixture_jobs.log_records")
    SimpleWorker([queue], connection=redis, job_class=job_class).work(burst=True)
    return job.id


def levels_and_messages(redis, job_id: str) -> list[tuple[str, str]]:
    return [(line["level"], line["message"]) for line in lines_after(redis, job_id)]


def test_records_the_job_logs_at_info_and_above_become_lines_of_its_log(redis, monkeypatch):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # the stock `rq worker` configures none
    assert levels_and_messages(redis, run_with(redis, LoggingJob)) == [
        ("info", "fetching page 1"),
        ("warning", "slow answer"),
        ("error", "giving up on page 2 (ValueError: bad page)"),
    ]


def test_a_logging_configuration_of_the_workers_own_keeps_its_level(redis, monkeypatch):
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.NullHandler()])
    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)
    assert [level for level, _ in levels_and_messages(redis, run_with(redis, LoggingJob))] == [
        "warning",
        "error",
    ]


@pytest.mark.parametrize("configured", [True, False])
def test_the_root_logger_is_as_it_was_after_the_job(redis, monkeypatch, configured):
    root = logging.getLogger()
    if not configured:
        monkeypatch.setattr(root, "handlers", [])
    handlers, level = list(root.handlers), root.level
    run_with(redis, LoggingJob)
    assert (root.handlers, root.level) == (handlers, level)


def test_warnings_still_reach_stderr_while_captured(redis, capsys, monkeypatch):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    run_with(redis, LoggingJob)
    err = capsys.readouterr().err
    assert "slow answer" in err and "fetching page 1" not in err


def test_rqs_default_job_class_captures_nothing(redis):
    assert lines_after(redis, run_with(redis, None)) == []
