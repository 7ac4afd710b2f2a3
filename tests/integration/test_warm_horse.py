"""The warm work horse (`jobs.worker.horse.WarmHorse`) under the stock `rq worker -w`, against real servers.

Each test starts its own worker on a queue of its own, loaded with the warm-horse class, the
Procfile's job class and the scheduler, and checks that the forking worker's safety holds:
stop, crash, timeout, lost heartbeats, warm and cold shutdown, retries, progress and job logs.
On the embedded server only: what is tested is the worker's processes, not Redis.
"""

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, Retry, Worker
from rq.command import send_stop_job_command
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from jobs.callbacks import CALLBACKS
from jobs.joblog import lines_after
from jobs.keys import channel_for
from jobs.snapshot import snapshot
from jobs.worker.dequeue import ReliableQueue
from support.servers import start_worker, stop_process
from support.wait import wait_until
from tests.integration.conftest import ON_EMBEDDED_ONLY
from web.reaper import LOOKAHEAD_S, reap_lost_jobs

pytestmark = ON_EMBEDDED_ONLY

ENDED = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED}


@dataclass
class Warm:
    """A running warm-horse worker, its name and its queue."""

    process: object
    name: str
    queue: Queue

    def run(self, func: str, *args, timeout_s: float = 20, **kwargs) -> Job:
        """Enqueue `func` with our callbacks and wait until it has ended."""
        job = self.queue.enqueue(func, *args, **CALLBACKS, **kwargs)
        return ended(job, timeout_s)

    def worker(self) -> Worker:
        """RQ's record of this worker."""
        return Worker.find_by_key(Worker.redis_worker_namespace_prefix + self.name, self.queue.connection)

    def registered_pid(self) -> int:
        return self.worker().pid


def ended(job: Job, timeout_s: float = 20) -> Job:
    """Wait until `job` has ended; returns it."""
    wait_until(lambda: job.get_status(refresh=True) in ENDED, timeout_s, what=f"job {job.id} ended")
    return job


def start_warm(redis_url: str, redis_client: Redis, logs_dir: Path, *extra: str, env=None) -> Warm:
    queue = ReliableQueue(f"warm-{uuid.uuid4().hex[:8]}", connection=redis_client)
    process, name = start_worker(redis_url, logs_dir, *extra, queues=(queue.name,), env=env)
    return Warm(process, name, queue)


@pytest.fixture
def warm(redis_url, redis_client, logs_dir) -> Iterator[Warm]:
    """The Procfile's worker (warm horse) on a queue of its own, with its job class and the scheduler."""
    worker = start_warm(redis_url, redis_client, logs_dir)
    yield worker
    stop_process(worker.process)


def exc_string(job: Job) -> str:
    return job.latest_result().exc_string or ""


def is_gone(pid: int) -> bool:
    """Whether no process (not even a zombie) has this pid."""
    return not Path(f"/proc/{pid}").exists()


def test_one_horse_runs_many_jobs(warm):
    jobs = [warm.run("tests.fixture_jobs.horse_pid") for _ in range(3)]
    assert {job.get_status() for job in jobs} == {JobStatus.FINISHED}
    pids = {job.return_value() for job in jobs}
    assert len(pids) == 1 and isinstance(next(iter(pids)), int) and pids != {warm.process.pid}


def horse_pids(redis_url, redis_client, logs_dir, env: dict[str, str], jobs: int) -> list[int]:
    """The horse pid of each of `jobs` jobs run one after another on a worker started with `env`."""
    worker = start_warm(redis_url, redis_client, logs_dir, env=env)
    try:
        pids = [worker.run("tests.fixture_jobs.horse_pid").return_value() for _ in range(jobs)]
    finally:
        stop_process(worker.process)
    assert all(isinstance(pid, int) for pid in pids), pids
    return pids


def test_the_horse_is_forked_again_after_its_max_jobs(redis_url, redis_client, logs_dir):
    pids = horse_pids(redis_url, redis_client, logs_dir, {"HORSE_MAX_JOBS": "2"}, 4)
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[1] != pids[2]


def test_a_horse_past_its_memory_ceiling_is_forked_again(redis_url, redis_client, logs_dir):
    pids = horse_pids(redis_url, redis_client, logs_dir, {"HORSE_MAX_RSS_MIB": "1"}, 3)
    assert len(set(pids)) == 3, pids  # each horse read its memory after its first job, and retired


def test_a_stop_ends_the_running_job_within_a_second_and_the_next_job_runs(warm, redis_client, tmp_path):
    key = f"pid-{uuid.uuid4().hex}"
    job = warm.queue.enqueue("tests.fixture_jobs.pid_then_wait", key, str(tmp_path / "never"), **CALLBACKS)
    wait_until(lambda: redis_client.get(key), what="the job running")
    asked = time.monotonic()
    send_stop_job_command(redis_client, job.id)
    wait_until(lambda: job.get_status(refresh=True) == JobStatus.STOPPED, 1.0, what="the job stopped")
    assert time.monotonic() - asked < 1.0
    assert is_gone(int(redis_client.get(key)))  # the stopped horse, reaped by its worker
    payload = snapshot(job.id, redis_client)
    assert (payload["state"], payload["status"]) == ("FAILURE", "stopped")
    following = warm.run("tests.fixture_jobs.horse_pid")
    assert following.get_status() == JobStatus.FINISHED
    assert following.return_value() != int(redis_client.get(key))  # a fresh horse
    assert warm.registered_pid() == warm.process.pid and warm.process.poll() is None


def test_a_stop_for_a_job_handed_behind_a_short_one_stops_that_job_only(warm, redis_client, tmp_path):
    # Enqueued together: the worker hands the second to the horse while it runs the first.
    key = f"pid-{uuid.uuid4().hex}"
    short = warm.queue.enqueue("tests.fixture_jobs.horse_pid", **CALLBACKS)
    long = warm.queue.enqueue("tests.fixture_jobs.pid_then_wait", key, str(tmp_path / "never"), **CALLBACKS)
    wait_until(lambda: redis_client.get(key), what="the second job running")
    send_stop_job_command(redis_client, long.id)
    wait_until(lambda: long.get_status(refresh=True) == JobStatus.STOPPED, 1.0, what="the second job stopped")
    assert ended(short).get_status() == JobStatus.FINISHED
    assert short.return_value() == int(redis_client.get(key))  # one horse ran both
    assert warm.run("tests.fixture_jobs.answer", 5).return_value() == 5


def test_a_cooperative_stop_ends_the_job_stopped_and_keeps_the_horse(warm, redis_client):
    before = warm.run("tests.fixture_jobs.horse_pid").return_value()
    job = warm.run("tests.fixture_jobs.count_until_stopped", 10)
    payload = snapshot(job.id, redis_client)
    assert (payload["state"], payload["status"]) == ("FAILURE", "stopped")
    assert warm.run("tests.fixture_jobs.horse_pid").return_value() == before


@pytest.mark.parametrize(("func", "args"), [("exit_hard", (3,)), ("segfault", ())])
def test_a_job_that_kills_its_horse_fails_alone_and_the_same_worker_runs_the_next(warm, func, args):
    crashed = warm.run(f"tests.fixture_jobs.{func}", *args)
    assert crashed.get_status() == JobStatus.FAILED
    assert "Work-horse terminated unexpectedly" in exc_string(crashed)
    following = warm.run("tests.fixture_jobs.answer", 7)
    assert (following.get_status(), following.return_value()) == (JobStatus.FINISHED, 7)
    assert following.latest_result().worker_name == warm.name
    assert warm.registered_pid() == warm.process.pid and warm.process.poll() is None


def test_a_horse_killed_while_idle_is_replaced_and_the_next_job_runs(warm):
    idle_horse = warm.run("tests.fixture_jobs.horse_pid").return_value()
    os.kill(idle_horse, signal.SIGKILL)  # as the OOM killer would
    following = warm.run("tests.fixture_jobs.horse_pid")
    assert following.get_status() == JobStatus.FINISHED and following.return_value() != idle_horse


def test_a_job_past_its_timeout_fails_and_the_next_runs_on_a_new_horse(warm):
    before = warm.run("tests.fixture_jobs.horse_pid").return_value()
    slow = warm.run("tests.fixture_jobs.sleep_for", 30, job_timeout=1, timeout_s=10)
    assert slow.get_status() == JobStatus.FAILED
    assert "JobTimeoutException" in exc_string(slow)
    after = warm.run("tests.fixture_jobs.horse_pid")
    assert after.get_status() == JobStatus.FINISHED and after.return_value() != before


def test_a_job_deaf_to_its_timeout_is_killed_by_the_worker_and_the_next_runs(
    redis_url, redis_client, logs_dir
):
    settings = {"HORSE_HARD_KILL_GRACE_S": "1"}  # RQ's 60 s grace, shortened for the test
    worker = start_warm(redis_url, redis_client, logs_dir, "--job-monitoring-interval", "1", env=settings)
    try:
        deaf = worker.run("tests.fixture_jobs.ignore_timeout", 30, job_timeout=1, timeout_s=15)
        following = worker.run("tests.fixture_jobs.answer", 7)
    finally:
        stop_process(worker.process)
    assert deaf.get_status() == JobStatus.FAILED
    assert "Work-horse terminated unexpectedly" in exc_string(deaf) and "signal 9" in exc_string(deaf)
    assert (following.get_status(), following.return_value()) == (JobStatus.FINISHED, 7)


def test_heartbeats_keep_a_running_job_alive_and_a_killed_worker_is_reported_lost(
    redis_url, redis_client, logs_dir, tmp_path
):
    worker = start_warm(redis_url, redis_client, logs_dir, "--job-monitoring-interval", "1")
    key = f"pid-{uuid.uuid4().hex}"
    job = worker.queue.enqueue("tests.fixture_jobs.pid_then_wait", key, str(tmp_path / "never"), **CALLBACKS)
    horse = int(wait_until(lambda: redis_client.get(key), what="the job running"))
    registry = StartedJobRegistry(worker.queue.name, connection=redis_client)

    def deadline() -> float:
        """The job's deadline in RQ's started registry (members are `<job id>:<execution id>`)."""
        scores = redis_client.zrange(registry.key, 0, -1, withscores=True)
        return next(score for member, score in scores if member.decode().startswith(f"{job.id}:"))

    first = deadline()
    wait_until(lambda: deadline() > first, 5, what="a heartbeat moving the deadline on")
    reap_lost_jobs(redis_client)  # the lost-job check, now: a live job is not lost
    assert job.get_status(refresh=True) == JobStatus.STARTED
    os.killpg(worker.process.pid, signal.SIGKILL)  # the worker and its scheduler
    os.kill(horse, signal.SIGKILL)  # the horse leads a process group of its own
    worker.process.wait(timeout=10)
    reap_lost_jobs(redis_client, now=deadline() - LOOKAHEAD_S + 1)  # the check, once the deadline passed
    payload = snapshot(job.id, redis_client)
    assert payload["state"] == "FAILURE" and payload["status"].startswith("worker lost"), payload


def test_sigterm_finishes_the_running_job_then_stops_the_idle_horse(warm, redis_client, tmp_path):
    key, done = f"pid-{uuid.uuid4().hex}", tmp_path / "done"
    job = warm.queue.enqueue("tests.fixture_jobs.pid_then_wait", key, str(done), **CALLBACKS)
    horse = int(wait_until(lambda: redis_client.get(key), what="the job running"))
    warm.process.send_signal(signal.SIGTERM)
    wait_until(lambda: warm.worker().shutdown_requested_date, what="the warm shutdown recorded")
    done.touch()
    assert warm.process.wait(timeout=15) == 0
    assert ended(job).get_status() == JobStatus.FINISHED
    assert is_gone(horse)


def test_a_second_sigterm_kills_the_running_job_with_the_worker(warm, redis_client, tmp_path):
    key = f"pid-{uuid.uuid4().hex}"
    warm.queue.enqueue("tests.fixture_jobs.pid_then_wait", key, str(tmp_path / "never"), **CALLBACKS)
    horse = int(wait_until(lambda: redis_client.get(key), what="the job running"))
    warm.process.send_signal(signal.SIGTERM)
    # RQ ignores a second signal that comes within 1 s of handling the first (a pool's duplicate):
    # count from when the worker noted the first, which a loaded machine may delay.
    key = Worker.redis_worker_namespace_prefix + warm.name
    wait_until(lambda: redis_client.hget(key, "shutdown_requested_date"), what="the warm shutdown noted")
    first = time.monotonic()
    wait_until(lambda: time.monotonic() - first > 1.1, 3, what="RQ's duplicate-signal window passed")
    warm.process.send_signal(signal.SIGTERM)
    warm.process.wait(timeout=10)
    wait_until(lambda: is_gone(horse), 5, what="the horse gone")


def test_retries_run_again_after_their_interval_under_the_scheduler(warm, redis_client):
    key = f"attempts-{uuid.uuid4().hex}"
    job = warm.queue.enqueue(
        "tests.fixture_jobs.fail_times", key, 2, retry=Retry(max=2, interval=1), **CALLBACKS
    )
    wait_until(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, 20, what="the third attempt")
    assert job.return_value() == "succeeded on attempt 3"
    assert snapshot(job.id, redis_client)["state"] == "SUCCESS"


def test_progress_callbacks_and_job_logs_work_in_the_warm_horse(warm, redis_client):
    published = redis_client.pubsub(ignore_subscribe_messages=True)
    published.psubscribe(channel_for("*"))
    wait_until(lambda: redis_client.publish(channel_for("probe"), "{}"), what="the subscription")
    counted = warm.run("tests.fixture_jobs.count", 5)
    payload = snapshot(counted.id, redis_client)
    assert (payload["state"], payload["result"]) == ("SUCCESS", {"counted": 5})
    assert counted.get_meta(refresh=True)["progress"]["current"] == 5
    states: list[str] = []
    deadline = time.monotonic() + 10
    while "SUCCESS" not in states:  # the success callback's payload, after the saves'
        assert time.monotonic() < deadline, states
        # None also stands for a subscribe confirmation, so keep reading until the deadline.
        message = published.get_message(timeout=1)
        if message and message["channel"].decode() == channel_for(counted.id):
            states.append(json.loads(message["data"])["state"])
    assert states[0] == "PROGRESS"
    published.close()
    logged = warm.run("tests.fixture_jobs.log_records")
    messages = [line["message"] for line in lines_after(redis_client, logged.id)]
    assert "fetching page 1" in messages and "rq's own line" not in messages


def test_dependents_run_once_the_job_they_wait_for_has_ended(warm, tmp_path):
    gate = tmp_path / "gate"
    first = warm.queue.enqueue("tests.fixture_jobs.wait_for_file", str(gate), **CALLBACKS)
    wait_until(lambda: first.get_status(refresh=True) == JobStatus.STARTED, what="the first job running")
    dependent = warm.queue.enqueue("tests.fixture_jobs.answer", 7, depends_on=first, **CALLBACKS)
    assert dependent.get_status() == JobStatus.DEFERRED
    gate.touch()
    assert ended(dependent).get_status() == JobStatus.FINISHED and dependent.return_value() == 7
    assert ended(first).get_status() == JobStatus.FINISHED
    # One that depends on a job already finished runs at once.
    assert warm.run("tests.fixture_jobs.answer", 8, depends_on=first).return_value() == 8


def test_a_job_with_its_result_discarded_ends_without_leaving_keys(warm, redis_client):
    job = warm.queue.enqueue("tests.fixture_jobs.answer", result_ttl=0, **CALLBACKS)
    wait_until(lambda: not redis_client.exists(job.key), what="the job deleted at its end")
    assert not redis_client.keys(f"rq:execution:{job.id}:*")
    assert job.id not in StartedJobRegistry(warm.queue.name, connection=redis_client)


def test_a_job_taken_early_goes_back_to_its_queue_while_a_long_job_runs(warm, redis_url, logs_dir, tmp_path):
    gate = tmp_path / "gate"
    long = warm.queue.enqueue("tests.fixture_jobs.wait_for_file", str(gate), **CALLBACKS)
    short = warm.queue.enqueue("tests.fixture_jobs.answer", 5, **CALLBACKS)  # `warm` takes it early
    wait_until(lambda: long.get_status(refresh=True) == JobStatus.STARTED, what="the long job running")
    other, other_name = start_worker(redis_url, logs_dir, queues=(warm.queue.name,))
    try:
        # Given back within the hold, not left to a rescue (which needs two sightings 5 s apart).
        assert ended(short, timeout_s=4).get_status() == JobStatus.FINISHED
        short.refresh()
        assert short.worker_name == other_name and long.get_status(refresh=True) == JobStatus.STARTED
    finally:
        gate.touch()
        stop_process(other)
    assert ended(long).get_status() == JobStatus.FINISHED


def test_a_stopped_jobs_final_payload_comes_after_its_end_is_stored(warm, redis_client, tmp_path):
    key = f"pid-{uuid.uuid4().hex}"
    job = warm.queue.enqueue("tests.fixture_jobs.pid_then_wait", key, str(tmp_path / "never"), **CALLBACKS)
    wait_until(lambda: redis_client.get(key), what="the job running")
    published = redis_client.pubsub(ignore_subscribe_messages=True)
    published.subscribe(channel_for(job.id))
    wait_until(lambda: redis_client.publish(channel_for(job.id), "{}"), what="the subscription")
    send_stop_job_command(redis_client, job.id)
    deadline = time.monotonic() + 10
    while True:
        assert time.monotonic() < deadline, "no final payload"
        message = published.get_message(timeout=1)
        if message and json.loads(message["data"]).get("state") == "FAILURE":
            break
    # A client that sees the final payload and reads (or cancels) at once finds the job ended.
    assert redis_client.hget(job.key, "status") == b"stopped"
    published.close()
