"""The lost-job check: jobs whose worker stopped heartbeating become FAILURE "worker lost"."""

import time

import pytest
from flask import Flask
from rq.executions import Execution
from rq.job import JobStatus

from jobs.keys import lost_job_lock_key
from jobs.registry import start_job
from jobs.snapshot import snapshot
from support.apps import UNIT_SETTINGS
from web import config, create_app, operators, reaper


def started_with_deadline_in(redis, seconds: int):
    """A job that a (pretend) worker started, whose registry deadline is `seconds` from now."""
    job = start_job(redis, "long_task", {"steps": 1})
    with redis.pipeline() as pipe:
        Execution.create(job, ttl=seconds, pipeline=pipe)
        job.set_status(JobStatus.STARTED, pipeline=pipe)
        pipe.execute()
    return job


def test_a_job_whose_heartbeat_is_stale_is_failed_as_worker_lost(redis):
    lost = started_with_deadline_in(redis, 30)  # heartbeat ~35 s old at a 5 s monitoring interval
    live = started_with_deadline_in(redis, 60)  # the smallest deadline a live job has
    reaper.reap_lost_jobs(redis, now=time.time())
    payload = snapshot(lost.id, redis)
    assert payload["state"] == "FAILURE" and payload["status"].startswith("worker lost: ")
    assert lost.id in lost.failed_job_registry.get_job_ids()
    assert snapshot(live.id, redis)["state"] == "PROGRESS"


def test_only_one_process_checks_per_interval(redis):
    assert reaper.check_once(redis, 1.0, "first")
    assert not reaper.check_once(redis, 1.0, "second")
    assert 0 < redis.pttl(lost_job_lock_key()) <= 900


@pytest.mark.parametrize("threads", [True, False])
def test_create_app_starts_the_check_only_when_background_threads_are_on(redis, monkeypatch, threads):
    started = []
    monkeypatch.setattr(reaper, "ensure_started", lambda connection, interval_s: started.append(interval_s))
    create_app({**UNIT_SETTINGS, "REDIS_CONNECTION": redis, "BACKGROUND_THREADS": threads})
    assert started == ([1.0] if threads else [])


def test_operators_init_app_starts_no_thread(redis, monkeypatch):
    started = []
    monkeypatch.setattr(reaper, "ensure_started", lambda connection, interval_s: started.append(interval_s))
    app = Flask(__name__)
    app.config.update(UNIT_SETTINGS, QUEUES="default", BACKGROUND_THREADS=True, LOST_JOB_CHECK_INTERVAL_S=1.0)
    app.extensions["rq"] = {"redis": redis, "queues": {}}
    operators.init_app(app)
    assert started == []


def test_background_threads_setting_reads_the_environment_as_a_yes_or_no():
    assert config.from_environment({"BACKGROUND_THREADS": "0"})["BACKGROUND_THREADS"] is False
    assert config.from_environment({"BACKGROUND_THREADS": "true"})["BACKGROUND_THREADS"] is True
    assert config.from_environment({})["BACKGROUND_THREADS"] is True
