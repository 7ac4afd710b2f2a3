"""The one-round-trip status read against a real server: it says what RQ's full API says, for
every RQ status, whoever put the job there (RQ's own calls, the dashboard's, a lost worker)."""

import re
import uuid
from datetime import timedelta

import pytest
from redis import Redis
from rq import Queue, Retry, SimpleWorker
from rq.command import send_stop_job_command
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from jobs.callbacks import CALLBACKS, initial_meta
from jobs.contract import isoformat, short_error, to_payload
from jobs.snapshot import snapshot
from support.wait import wait_until


class CountingRedis(Redis):
    """A client that counts the commands it sends (each is one round trip here)."""

    sent = 0

    def execute_command(self, *args, **options):
        self.sent += 1
        return super().execute_command(*args, **options)


def rq_says(job_id: str, connection: Redis) -> dict:
    """The payload built from RQ's own API: Job.fetch, its latest result, the scheduled registry."""
    job = Job.fetch(job_id, connection=connection)
    status = job.get_status(refresh=False)
    ending = {}
    if status == JobStatus.FINISHED:
        ending["result"] = job.return_value()
    elif status == JobStatus.FAILED:
        latest = job.latest_result()
        ending["error"] = short_error(latest.exc_string if latest else None)
    elif status == JobStatus.SCHEDULED:
        try:
            ending["eta"] = ScheduledJobRegistry(job.origin, connection=connection).get_scheduled_time(job)
        except NoSuchJobError:
            pass
    elif status == JobStatus.QUEUED:  # on a queue no worker serves, and outside the fallback order
        index = job.get_position()
        ending["line"] = {"position": None if index is None else index + 1}
    elif status == JobStatus.STARTED:  # a job without history
        ending["usual_s"] = None
    moment = job.ended_at or job.started_at or job.enqueued_at or job.created_at
    return to_payload(job.id, status, job.meta, updated_at=isoformat(moment), **ending)


def without_countdown(payload: dict) -> dict:
    """The payload without the "in N s" of a retry, which moves on between two reads."""
    return {**payload, "status": re.sub(r" in -?\d+ s$", "", payload["status"])}


@pytest.fixture
def counting(redis_url) -> CountingRedis:
    """A counting client on the session's server, the read's script already loaded."""
    client = CountingRedis.from_url(redis_url)
    with pytest.raises(NoSuchJobError):
        snapshot("warm-up", client)
    return client


@pytest.fixture
def quiet_queue(redis_client) -> Queue:
    """A queue no worker serves."""
    return Queue(f"snapshot-{uuid.uuid4().hex[:8]}", connection=redis_client)


def read_once(counting: CountingRedis, job_id: str) -> dict:
    """snapshot(), asserting it took one command, and that it agrees with RQ's full API."""
    before = counting.sent
    payload = snapshot(job_id, counting)
    assert counting.sent - before == 1
    assert without_countdown(payload) == without_countdown(rq_says(job_id, counting))
    return payload


def run_burst(queue: Queue) -> None:
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def test_waiting_states_read_as_rq_says(counting, quiet_queue, redis_client):
    queued = quiet_queue.enqueue("tests.fixture_jobs.answer")
    assert read_once(counting, queued.id)["state"] == "PENDING"
    deferred = quiet_queue.enqueue("tests.fixture_jobs.answer", depends_on=queued)
    assert deferred.get_status() == JobStatus.DEFERRED
    read_once(counting, deferred.id)
    delayed = quiet_queue.enqueue_in(timedelta(hours=1), "tests.fixture_jobs.answer")
    assert read_once(counting, delayed.id)["eta"]
    created = Job.create("tests.fixture_jobs.answer", connection=redis_client)
    created.save()
    assert read_once(counting, created.id)["state"] == "PENDING"
    for status in (JobStatus.RATE_LIMITED, JobStatus.READY_TO_ENQUEUE):
        job = quiet_queue.enqueue("tests.fixture_jobs.answer")
        job.set_status(status)
        assert read_once(counting, job.id)["state"] == "PENDING"


def test_ended_states_read_as_rq_says(counting, quiet_queue):
    finished = quiet_queue.enqueue("jobs.long_task", steps=1, step_seconds=0, **CALLBACKS)
    none_result = quiet_queue.enqueue("tests.fixture_jobs.answer", None)
    failed = quiet_queue.enqueue("tests.fixture_jobs.fail", "the pump seized", **CALLBACKS)
    bare_failure = quiet_queue.enqueue("tests.fixture_jobs.fail_without_message")
    run_burst(quiet_queue)
    assert read_once(counting, finished.id)["result"] == 42
    assert read_once(counting, none_result.id)["result"] is None
    assert read_once(counting, failed.id)["status"] == "the pump seized"
    assert read_once(counting, bare_failure.id)["status"] == "KeyError"
    counting.delete(f"rq:results:{finished.id}")  # a result gone before its job
    assert read_once(counting, finished.id)["state"] == "SUCCESS"

    waiting = quiet_queue.enqueue("tests.fixture_jobs.answer")
    waiting.cancel()  # what the dashboard's cancel does
    assert read_once(counting, waiting.id)["status"] == "canceled"
    FailedJobRegistry(quiet_queue.name, connection=quiet_queue.connection).requeue(failed.id)
    assert read_once(counting, failed.id)["state"] == "PENDING"  # its old result is not read


def test_a_retry_waiting_in_the_scheduler_reads_as_rq_says(counting, quiet_queue):
    key = f"snapshot-attempts-{uuid.uuid4().hex}"
    job = quiet_queue.enqueue(
        "tests.fixture_jobs.fail_times",
        key,
        2,
        retry=Retry(max=2, interval=3600),
        meta=initial_meta(retry_max=2),
        **CALLBACKS,
    )
    run_burst(quiet_queue)
    payload = read_once(counting, job.id)
    assert payload["state"] == "PENDING" and payload["status"].startswith("retrying 1/2 in ")


def test_a_lost_worker_reads_as_rq_says(counting, quiet_queue, redis_client):
    job = quiet_queue.enqueue("tests.fixture_jobs.answer", **CALLBACKS)
    with redis_client.pipeline() as pipe:
        Execution.create(job, ttl=1, pipeline=pipe)
        job.set_status(JobStatus.STARTED, pipeline=pipe)
        pipe.execute()
    assert read_once(counting, job.id)["state"] == "PROGRESS"
    StartedJobRegistry(quiet_queue.name, connection=redis_client).cleanup(timestamp=2**40)
    assert read_once(counting, job.id)["status"].startswith("worker lost: ")


def test_a_running_then_stopped_job_reads_as_rq_says(counting, worker, redis_client, tmp_path):
    job = Queue("high", connection=redis_client).enqueue(
        "tests.fixture_jobs.report_then_wait", str(tmp_path / "never"), **CALLBACKS
    )
    wait_until(lambda: snapshot(job.id, redis_client)["current"] == 1, timeout_s=30)
    assert read_once(counting, job.id)["status"] == "first of four"
    send_stop_job_command(redis_client, job.id)
    wait_until(lambda: Job.fetch(job.id, connection=redis_client).get_status() == JobStatus.STOPPED)
    assert read_once(counting, job.id)["status"] == "stopped"


def test_an_unknown_or_deleted_job_is_no_such_job(counting, quiet_queue):
    job = quiet_queue.enqueue("tests.fixture_jobs.answer")
    job.delete()
    for job_id in (job.id, "never-enqueued"):
        with pytest.raises(NoSuchJobError):
            snapshot(job_id, counting)
        with pytest.raises(NoSuchJobError):
            Job.fetch(job_id, connection=counting)
