"""The warm horse's pure parts: the job state it is sent, and its memory reading.

Its behaviour with real processes is tested in tests/integration/test_warm_horse.py.
"""

import pickle

import pytest
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.suspension import suspend
from rq.worker.base import StopRequested

from jobs.logcapture import LoggingJob
from jobs.worker import Worker
from jobs.worker.horse import _rss_mib
from jobs.worker.rq_adapter import job_from_state, state_of


def test_a_job_sent_to_the_horse_arrives_whole(redis):
    queue = Queue("default", connection=redis, job_class=LoggingJob)
    enqueued = queue.enqueue("tests.fixture_jobs.answer", 7, job_timeout=30, meta={"owner": "me"})
    job = LoggingJob.fetch(enqueued.id, connection=redis)

    arrived = job_from_state(LoggingJob, pickle.loads(pickle.dumps(state_of(job))), redis)

    assert isinstance(arrived, LoggingJob) and arrived.connection is redis
    assert (arrived.id, arrived.origin, arrived.timeout, arrived.meta) == (
        job.id,
        "default",
        30,
        {"owner": "me"},
    )
    assert (arrived.func_name, arrived.args, arrived.perform()) == ("tests.fixture_jobs.answer", (7,), 7)


def test_a_job_sent_to_the_horse_keeps_its_serializer(redis):
    queue = Queue("default", connection=redis, serializer=JSONSerializer)
    job = Job.fetch(
        queue.enqueue("tests.fixture_jobs.answer", 7).id, connection=redis, serializer=JSONSerializer
    )
    arrived = job_from_state(Job, pickle.loads(pickle.dumps(state_of(job))), redis)
    assert arrived.serializer is JSONSerializer and arrived.perform() == 7


def test_the_state_leaves_out_the_redis_client():
    job = LoggingJob(connection=object())
    assert "connection" not in state_of(job)


def test_resident_memory_is_read():
    assert 1 < _rss_mib() < 10_000


def test_a_heartbeat_right_after_one_is_folded_into_it(redis):
    worker = Worker(["default"], connection=redis)
    worker.heartbeat()
    assert redis.ttl(worker.key) > 400
    redis.delete(worker.key)
    worker.heartbeat()  # under a second later, same TTL: nothing sent
    assert not redis.exists(worker.key)
    worker.heartbeat(worker.worker_ttl + 600)  # a longer TTL is always sent
    assert redis.ttl(worker.key) > worker.worker_ttl + 500


def test_rq_suspend_is_seen_by_the_first_check_and_then_once_a_second(redis):
    worker = Worker(["default"], connection=redis)
    worker.check_for_suspension(burst=True)
    suspend(redis)
    worker.check_for_suspension(burst=True)  # within the second: not asked again
    worker._suspension_checked_at -= 1.0
    with pytest.raises(StopRequested):
        worker.check_for_suspension(burst=True)
