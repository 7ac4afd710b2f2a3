"""Nothing taken from a queue is lost: the Procfile's worker class (`jobs.worker.Worker`) under faults.

Real servers and the real `rq worker` CLI: a worker SIGKILLed right after it takes a job
(`tests.fixture_workers.DiesAfterPop`), and a persisting Redis (AOF) SIGKILLed right after a start.
"""

import time
import uuid

from redis import Redis
from rq.job import Job

from jobs.worker.dequeue import RESCUE_EVERY_S, STUCK_GAP_S, ReliableQueue, rescue_stranded
from support.sentinel import SentinelCluster
from support.servers import start_worker, stop_process
from support.wait import wait_until
from tests.integration.conftest import ON_EMBEDDED_ONLY

# The promise: a stranded job runs within this long of its worker's death (docs/worker.md).
RESCUE_BOUND_S = 30
DYING = ("--worker-class", "tests.fixture_workers.DiesAfterPop")


def fresh_queues(client: Redis) -> list[ReliableQueue]:
    """high, default and low of this test only (no other worker listens there)."""
    tag = uuid.uuid4().hex[:6]
    return [ReliableQueue(f"{tag}-{name}", connection=client) for name in ("high", "default", "low")]


def held(queue: ReliableQueue) -> list[str]:
    return [i.decode() for i in queue.connection.lrange(queue.intermediate_queue_key, 0, -1)]


def strand(redis_url: str, logs_dir, queue: ReliableQueue, names: list[str]) -> Job:
    """Enqueue a job that a worker takes and dies with, before registering it; returns the job."""
    dying, _ = start_worker(redis_url, logs_dir, *DYING, queues=tuple(names), scheduler=False)
    try:
        job = queue.enqueue("tests.fixture_jobs.answer")
        assert dying.wait(timeout=30) == -9
    finally:
        stop_process(dying)
    assert held(queue) == [job.id] and queue.count == 0 and job.get_status() == "queued"
    return job


@ON_EMBEDDED_ONLY
def test_a_job_whose_worker_died_right_after_the_pop_runs_on_the_restarted_worker(
    redis_url, redis_client, logs_dir
):
    queues = fresh_queues(redis_client)
    names = [queue.name for queue in queues]
    job = strand(redis_url, logs_dir, queues[1], names)
    restarted = time.monotonic()
    worker, name = start_worker(redis_url, logs_dir, queues=tuple(names))
    try:
        wait_until(lambda: job.get_status(refresh=True) == "finished", RESCUE_BOUND_S, what="stranded job")
        took_s = time.monotonic() - restarted
        job.refresh()
        assert job.worker_name == name and job.return_value() == 42
        assert held(queues[1]) == []
        # Seen at the worker's start and again a rescue round later, at least the gap apart.
        assert STUCK_GAP_S <= took_s < RESCUE_EVERY_S + STUCK_GAP_S + 10
    finally:
        stop_process(worker)


@ON_EMBEDDED_ONLY
def test_a_rescued_job_goes_back_at_the_front_of_its_queue_and_priority_is_kept(
    redis_url, redis_client, logs_dir
):
    queues = fresh_queues(redis_client)
    high, default, low = queues
    names = [queue.name for queue in queues]
    stranded = strand(redis_url, logs_dir, high, names)
    later = [queue.enqueue("tests.fixture_jobs.answer") for queue in (low, default, high)]
    rescued = lambda: stranded.id in rescue_stranded(queues, redis_client)[0]  # noqa: E731
    wait_until(rescued, 3 * STUCK_GAP_S, what="the stranded job put back")
    assert high.job_ids == [stranded.id, later[2].id] and held(high) == []
    worker, _ = start_worker(redis_url, logs_dir, queues=tuple(names))
    try:
        order = [stranded, later[2], later[1], later[0]]  # high, high, default, low
        wait_until(lambda: all(job.get_status(refresh=True) == "finished" for job in order), 30, what="all")
        starts = [Job.fetch(job.id, connection=redis_client).started_at for job in order]
        assert starts == sorted(starts)
    finally:
        stop_process(worker)


def test_a_redis_restarted_right_after_each_start_leaves_no_job_behind(tmp_path, logs_dir):
    cluster = SentinelCluster(tmp_path / "redis", replicas=0, sentinels=0)  # one server, AOF fsync always
    cluster.start()
    port = cluster.primary_port()
    url = f"redis://127.0.0.1:{port}/0"
    client = Redis.from_url(url)
    worker = start_worker(url, logs_dir)[0]

    def supervised() -> None:
        nonlocal worker
        if worker.poll() is not None:  # a worker busy during an outage exits; its supervisor restarts it
            worker = start_worker(url, logs_dir)[0]

    try:
        queue = ReliableQueue("default", connection=client)
        jobs = []
        for _ in range(3):
            wait_until(lambda: client.ping(), 10, what="Redis back")
            supervised()
            jobs.append(queue.enqueue("tests.fixture_jobs.answer"))
            cluster.kill(port)  # right after the start: the worker is taking it
            time.sleep(1.0)  # the outage itself, not a wait for anything
            cluster.start_node(cluster.node(port))
        wait_until(lambda: client.ping(), 10, what="Redis back")

        def all_finished() -> bool:
            supervised()
            return all(job.get_status(refresh=True) == "finished" for job in jobs)

        wait_until(all_finished, 60, what="every job started around a Redis restart finished")
        assert held(queue) == [] and queue.count == 0
    finally:
        stop_process(worker)
        cluster.stop()
