"""A waiting job's `position` against the order in which a real worker (the Procfile's) then takes
the jobs, over three queues of different priority."""

import uuid

from rq import Queue
from rq.job import Job, JobStatus

from jobs.snapshot import snapshot
from support.servers import start_worker, stop_process
from support.wait import wait_until
from tests.integration.test_snapshot import CountingRedis

# The order the jobs are enqueued in: mixed, so no queue's jobs are enqueued together.
ENQUEUES = ["low", "default", "low", "high", "default", "low", "high", "default", "low"]


def test_positions_are_the_order_a_worker_takes_the_jobs_in(redis_url, redis_client, logs_dir, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    queues = {
        level: Queue(f"{level}-{suffix}", connection=redis_client) for level in ("high", "default", "low")
    }
    worker, _ = start_worker(redis_url, logs_dir, queues=tuple(queue.name for queue in queues.values()))
    try:
        gate = tmp_path / "gate"
        blocker = queues["high"].enqueue("tests.fixture_jobs.wait_for_file", str(gate))
        wait_until(lambda: blocker.get_status(refresh=True) == JobStatus.STARTED, timeout_s=20)
        ids = [queues[level].enqueue("tests.fixture_jobs.answer").id for level in ENQUEUES]
        counting = CountingRedis.from_url(redis_url)
        snapshot(ids[0], counting)  # loads the script on this server
        before = counting.sent
        payloads = {job_id: snapshot(job_id, counting) for job_id in ids}
        assert counting.sent - before == len(ids)  # one round trip each
        positions = {job_id: payload["position"] for job_id, payload in payloads.items()}
        assert sorted(positions.values()) == list(range(1, len(ids) + 1))
        # The worker is busy with a job of a name without history: no evidence for a start time.
        assert {payload["expected_start_s"] for payload in payloads.values()} == {None}

        gate.touch()
        jobs = wait_until(
            lambda: (
                (found := Job.fetch_many(ids, connection=redis_client))
                and all(job.get_status(refresh=False) == JobStatus.FINISHED for job in found)
                and found
            ),
            timeout_s=30,
        )
        taken = [job.id for job in sorted(jobs, key=lambda job: job.started_at)]
        assert taken == sorted(ids, key=positions.get)
    finally:
        stop_process(worker)
