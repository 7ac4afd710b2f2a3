"""Riding out Redis outages (`jobs.outage`): the retry within the grace, saves kept, an end written once."""

import fakeredis
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from rq.job import JobStatus

from jobs import joblog, outage, progress, throttle
from jobs.keys import ended_key
from jobs.registry import start_job
from jobs.worker.bookkeeping import _END


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(outage, "RETRY_EVERY_S", 0.01)
    outage.clock.since = None
    yield
    outage.clock.since = None


def flaky(failures: int):
    """An operation that fails `failures` times with a refused connection, then answers."""
    calls = []

    def do():
        calls.append(1)
        if len(calls) <= failures:
            raise RedisConnectionError("refused")
        return "answer"

    return do, calls


def test_a_command_is_retried_until_redis_answers_within_the_grace(monkeypatch):
    monkeypatch.setenv("REDIS_OUTAGE_GRACE_S", "5")
    do, calls = flaky(3)
    assert outage.GraceRetry().call_with_retry(do, lambda error: None) == "answer"
    assert len(calls) == 4 and not outage.in_outage()


def test_past_the_grace_the_command_raises_and_says_why(monkeypatch, caplog):
    monkeypatch.setenv("REDIS_OUTAGE_GRACE_S", "0.05")
    do, _ = flaky(10_000)
    with pytest.raises(RedisConnectionError):
        outage.GraceRetry().call_with_retry(do, lambda error: None)
    assert "past REDIS_OUTAGE_GRACE_S=0.05: giving up" in caplog.text


def test_fail_fast_raises_at_once():
    do, calls = flaky(1)
    with outage.fail_fast(), pytest.raises(RedisConnectionError):
        outage.GraceRetry().call_with_retry(do, lambda error: None)
    assert len(calls) == 1


def test_the_worker_connection_gets_the_policy_on_every_connection():
    client = fakeredis.FakeRedis()
    client.ping()
    outage.ride_out(client)
    pool = client.connection_pool
    assert isinstance(pool.connection_kwargs["retry"], outage.GraceRetry)  # those made from now on
    assert all(isinstance(made.retry, outage.GraceRetry) for made in pool._available_connections)


def end_of(redis, job, execution_id: str):
    """Run the end script for `job` as execution `execution_id`: mark it finished."""
    end = [4, "HSET", job.key, "status", "finished"]
    execution_key = f"rq:execution:{execution_id}"
    keys, args = outage.end_once_input(job.key, execution_key, execution_id, end, [job.dependents_key])
    return _END(keys=keys, args=args, client=redis)


def started(redis, execution_id: str):
    job = start_job(redis, "long_task", {"steps": 1})
    job.set_status(JobStatus.STARTED)
    redis.hset(f"rq:execution:{execution_id}", "job_id", job.id)
    return job


def test_an_end_sent_again_changes_nothing_and_returns_the_same_reply(redis):
    job = started(redis, "e1")
    assert end_of(redis, job, "e1") == 1
    redis.hset(job.key, "status", "started")  # were it run again, it would mark it finished again
    assert end_of(redis, job, "e1") == 1
    assert job.get_status(refresh=True) == JobStatus.STARTED
    assert redis.ttl(ended_key("e1")) > 0


def test_a_job_canceled_while_it_ran_ends_finished_as_under_rq(redis):
    job = started(redis, "e1")
    job.set_status(JobStatus.CANCELED)  # RQ's job.cancel() on a running job; it runs on
    assert end_of(redis, job, "e1") == 1


@pytest.mark.parametrize("meanwhile", ["deleted", "failed as lost", "run by another execution"])
def test_a_job_that_changed_hands_during_an_outage_is_not_overwritten(redis, meanwhile):
    job = started(redis, "e1")
    if meanwhile == "deleted":
        redis.delete(job.key)
    elif meanwhile == "failed as lost":
        job.set_status(JobStatus.FAILED)
    else:
        redis.delete("rq:execution:e1")
    assert end_of(redis, job, "e1") == outage.NOT_OURS
    assert redis.hget(job.key, "status") != b"finished"


def test_progress_saved_while_redis_is_away_is_kept_and_the_newest_saved_once_it_is_back(redis, monkeypatch):
    server = fakeredis.FakeServer()
    connection = fakeredis.FakeRedis(server=server)
    job = start_job(connection, "long_task", {"steps": 3})
    monkeypatch.setattr(progress, "get_current_job", lambda: job)
    server.connected = False
    assert progress.report(1, 3, "one", log=True) is False
    assert progress.report(2, 3, "two", log=True, clock=lambda: 1e9) is False  # the job goes on
    server.connected = True
    throttle.flush(job)
    assert job.get_meta(refresh=True)["progress"]["current"] == 2
    lines = [line["message"] for line in joblog.lines_after(connection, job.id)]
    assert lines == ["step 1 of 3: one", "step 2 of 3: two"]


def test_log_lines_kept_during_an_outage_are_capped_to_the_newest(monkeypatch):
    monkeypatch.setenv("LOG_MAX_LINES", "3")
    for n in range(5):
        joblog.keep("job", joblog.make_line(str(n)))
    assert [line["message"] for line in joblog._waiting.pop("job")] == ["2", "3", "4"]


def test_a_job_with_dependents_is_left_to_rqs_own_end(redis):
    job = started(redis, "e1")
    redis.sadd(job.dependents_key, "child")
    assert end_of(redis, job, "e1") == 0
    assert job.get_status(refresh=True) == JobStatus.STARTED and not redis.exists(ended_key("e1"))
