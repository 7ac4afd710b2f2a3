"""The lost-job check: jobs whose worker stopped heartbeating become FAILURE "worker lost"."""

import time

import pytest
from flask import Flask
from rq.cli.cli import main as rq_cli
from rq.executions import Execution
from rq.job import JobStatus

from jobs.keys import lost_job_lock_key
from jobs.registry import start_job
from jobs.snapshot import snapshot
from jobs.worker import Worker
from support.apps import UNIT_SETTINGS
from support.servers import rq_worker_argv
from web import config, create_app, operators, reaper


def started_with_deadline_in(redis, seconds: int, queue: str = "default"):
    """A job that a (pretend) worker started, whose registry deadline is `seconds` from now."""
    job = start_job(redis, "long_task", {"steps": 1}, queue=queue)
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


def test_the_production_defaults_fail_a_dead_workers_job_within_45_s_and_never_a_live_one(redis):
    # Integration tests run the check with a longer lookahead, to be quick: this is what deploys get.
    argv = rq_worker_argv()[2:]
    interval_s = (
        rq_cli.commands["worker"]
        .make_context("worker", argv, resilient_parsing=True)
        .params["job_monitoring_interval"]
    )
    assert (interval_s, reaper.LOOKAHEAD_S, config.DEFAULTS["LOST_JOB_LOOKAHEAD_S"]) == (5, 40.0, 40.0)
    job = start_job(redis, "long_task", {"steps": 1})
    worker = Worker(["default"], connection=redis, job_monitoring_interval=interval_s)
    assert worker.get_heartbeat_ttl(job) == interval_s + reaper.RQ_DEADLINE_MARGIN_S  # RQ's deadline
    stale_after_s = interval_s + reaper.RQ_DEADLINE_MARGIN_S - reaper.LOOKAHEAD_S  # heartbeat age that fails
    assert stale_after_s + config.DEFAULTS["LOST_JOB_CHECK_INTERVAL_S"] < 45  # docs/operations.md: ~25 s
    assert reaper.RQ_DEADLINE_MARGIN_S - reaper.LOOKAHEAD_S >= 20  # seconds a heartbeat may be late


def test_a_longer_lookahead_fails_a_job_sooner(redis):
    stale = started_with_deadline_in(redis, 45)
    reaper.reap_lost_jobs(redis, now=time.time())
    assert snapshot(stale.id, redis)["state"] == "PROGRESS"
    reaper.check_once(redis, 1.0, "tests", lookahead_s=50)
    assert snapshot(stale.id, redis)["state"] == "FAILURE"


def test_the_lookahead_setting_is_read_from_the_environment():
    assert config.from_environment({"LOST_JOB_LOOKAHEAD_S": "50"})["LOST_JOB_LOOKAHEAD_S"] == 50.0


@pytest.mark.parametrize("lookahead_s", [60, -1])
def test_a_lookahead_that_would_fail_live_jobs_stops_the_app_with_a_sentence(redis, lookahead_s):
    overrides = {**UNIT_SETTINGS, "REDIS_CONNECTION": redis, "BACKGROUND_THREADS": True}
    with pytest.raises(RuntimeError, match="LOST_JOB_LOOKAHEAD_S must be"):
        create_app({**overrides, "LOST_JOB_LOOKAHEAD_S": lookahead_s})


def test_only_one_process_checks_per_interval(redis):
    assert reaper.check_once(redis, 1.0, "first")
    assert not reaper.check_once(redis, 1.0, "second")
    assert 0 < redis.pttl(lost_job_lock_key()) <= 900


@pytest.mark.parametrize("threads", [True, False])
def test_create_app_starts_the_check_only_when_background_threads_are_on(redis, monkeypatch, threads):
    started = []
    monkeypatch.setattr(reaper, "ensure_started", lambda connection, *timing: started.append(timing))
    create_app({**UNIT_SETTINGS, "REDIS_CONNECTION": redis, "BACKGROUND_THREADS": threads})
    assert started == ([(1.0, 40.0)] if threads else [])


def test_operators_init_app_starts_no_thread(redis, monkeypatch):
    started = []
    monkeypatch.setattr(reaper, "ensure_started", lambda connection, *timing: started.append(timing))
    app = Flask(__name__)
    app.config.update(UNIT_SETTINGS, QUEUES="default", BACKGROUND_THREADS=True, LOST_JOB_CHECK_INTERVAL_S=1.0)
    app.extensions["rq"] = {"redis": redis, "queues": {}}
    operators.init_app(app)
    assert started == []


def test_background_threads_setting_reads_the_environment_as_a_yes_or_no():
    assert config.from_environment({"BACKGROUND_THREADS": "0"})["BACKGROUND_THREADS"] is False
    assert config.from_environment({"BACKGROUND_THREADS": "true"})["BACKGROUND_THREADS"] is True
    assert config.from_environment({})["BACKGROUND_THREADS"] is True


class Answers:
    """A Redis that says who it is (INFO server), as the hold asks; the rest is the real fakeredis."""

    def __init__(self, redis, run_id: str, uptime_s: int = 3600) -> None:
        self.redis, self.run_id, self.uptime_s = redis, run_id, uptime_s

    def info(self, section):
        return {"run_id": self.run_id, "uptime_in_seconds": self.uptime_s}

    def __getattr__(self, name):
        return getattr(self.redis, name)


def test_after_redis_was_unreachable_the_check_waits_one_hold_then_fails_a_dead_workers_job(redis):
    now = [100.0]
    hold = reaper.OutageHold(hold_s=10, clock=lambda: now[0])
    server = Answers(redis, "a")
    assert not hold.holds(server)
    lost = started_with_deadline_in(redis, 30)
    hold.unreachable()
    assert not reaper.check_once(server, 1.0, "t", hold=hold)
    assert snapshot(lost.id, redis)["state"] == "PROGRESS"
    now[0] += 10
    assert reaper.check_once(server, 1.0, "t", hold=hold)
    assert snapshot(lost.id, redis)["status"].startswith("worker lost")


@pytest.mark.parametrize("changed", ["restarted", "failed over"])
def test_a_restarted_or_failed_over_redis_holds_the_check(redis, changed):
    now = [100.0]
    hold = reaper.OutageHold(hold_s=10, clock=lambda: now[0])
    assert not hold.holds(Answers(redis, "old"))
    uptime_s = 2 if changed == "restarted" else 3600  # a promoted replica has run for long
    assert hold.holds(Answers(redis, "new", uptime_s))
    now[0] += 9.9
    assert hold.holds(Answers(redis, "new", 12))
    now[0] += 0.1
    assert not hold.holds(Answers(redis, "new", 12))


def test_a_redis_that_started_moments_ago_holds_a_check_that_never_saw_it_before(redis):
    hold = reaper.OutageHold(hold_s=10)
    assert hold.holds(Answers(redis, "fresh", uptime_s=3))
    assert not hold.holds(Answers(redis, "fresh", uptime_s=10))
    assert not hold.holds(redis)  # no INFO (fakeredis): only unreachability holds
