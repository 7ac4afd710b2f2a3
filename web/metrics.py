"""Prometheus text for /metrics, read from Redis at scrape time so every web process answers the same."""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from redis import Redis
from rq import Queue, Worker
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

from jobs.durations import read_durations

# RQ's registries by the job status they hold; queued jobs are the queue's own list.
REGISTRIES = {
    "started": StartedJobRegistry,
    "scheduled": ScheduledJobRegistry,
    "deferred": DeferredJobRegistry,
    "finished": FinishedJobRegistry,
    "failed": FailedJobRegistry,
    "canceled": CanceledJobRegistry,
}


class RedisCollector:
    """A prometheus-client collector that reads queues, registries, workers and durations from Redis."""

    def __init__(self, connection: Redis) -> None:
        self.connection = connection

    def collect(self):
        """Yield every metric family (prometheus-client calls this once per scrape)."""
        queues = sorted(Queue.all(connection=self.connection), key=lambda queue: queue.name)
        depth = GaugeMetricFamily("rq_queue_length", "Jobs waiting in each queue", labels=["queue"])
        jobs = GaugeMetricFamily("rq_jobs", "Jobs by queue and RQ status", labels=["queue", "status"])
        for queue in queues:
            depth.add_metric([queue.name], queue.count)
            jobs.add_metric([queue.name, "queued"], queue.count)
            for status, registry_class in REGISTRIES.items():
                registry = registry_class(queue.name, connection=self.connection)
                jobs.add_metric([queue.name, status], registry.get_job_count(cleanup=False))
        yield depth
        yield jobs
        yield from self._workers()
        yield self._durations()

    def _workers(self):
        by_state = GaugeMetricFamily("rq_workers", "Registered workers by state", labels=["state"])
        by_queue = GaugeMetricFamily(
            "rq_queue_workers", "Registered workers listening on each queue", labels=["queue"]
        )
        states: dict[str, int] = {}
        listening: dict[str, int] = {}
        for worker in Worker.all(connection=self.connection):
            state = worker.get_state()
            state = str(getattr(state, "value", state))
            states[state] = states.get(state, 0) + 1
            for name in worker.queue_names():
                listening[name] = listening.get(name, 0) + 1
        for state, count in sorted(states.items()):
            by_state.add_metric([state], count)
        for name, count in sorted(listening.items()):
            by_queue.add_metric([name], count)
        return by_state, by_queue

    def _durations(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "rq_job_duration_seconds",
            "Run time of finished jobs, by queue and outcome (jobs started with our callbacks)",
            labels=["queue", "outcome"],
        )
        for (queue, outcome), entry in sorted(read_durations(self.connection).items()):
            buckets = [
                ("+Inf" if bound == float("inf") else str(bound), count) for bound, count in entry["buckets"]
            ]
            family.add_metric([queue, outcome], buckets, entry["sum"])
        return family


def render_metrics(connection: Redis) -> tuple[bytes, str]:
    """The Prometheus exposition text and its content type.

    Raises:
        redis.exceptions.ConnectionError: Redis is unreachable (the app answers 503).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(connection))
    return generate_latest(registry), CONTENT_TYPE_LATEST
