"""Durability of a start: wait until a replica has the new job, when the primary has one attached.

Replication is asynchronous: a job that only the primary holds is lost if the primary dies
before passing it on and a replica takes over. `WAIT 1 <timeout>` blocks until one replica has
acknowledged the last write of the connection it runs on. RQ's enqueue spreads its writes over
pooled connections, so after it we PUBLISH a probe and WAIT in one pipeline, on one connection:
Redis replicates one ordered stream, so a replica that has the probe has the job too (measured:
WAIT on a connection that wrote nothing returns at once, whatever the replicas hold).

Without a replica attached, WAIT could only time out, so it is skipped: whether replicas are
attached is read with ROLE at most every RECHECK_S, off the request path most of the time. A
shortfall is checked again at once (the replica may just have gone).
"""

import logging
import threading
import time

from redis import Redis
from redis.exceptions import ResponseError

from jobs.keys import replication_probe_channel

log = logging.getLogger(__name__)

# How long a "replicas attached" answer is trusted before ROLE is asked again.
RECHECK_S = 5.0
NOT_REPLICATED_RETRY_AFTER_S = 2


class NotReplicated(Exception):
    """The job is on the primary, but no attached replica acknowledged it in time."""

    retry_after_s = NOT_REPLICATED_RETRY_AFTER_S


class ReplicaAck:
    """Per process: wait for a replica's acknowledgement of the writes made so far, when one is attached."""

    def __init__(self, timeout_ms: int, clock=time.monotonic) -> None:
        self.timeout_ms = timeout_ms
        self._clock = clock
        self._lock = threading.Lock()
        self._replicas = 0
        self._checked_at: float | None = None
        self._unsupported = False

    def confirm(self, connection: Redis, job_id: str) -> int:
        """Return how many replicas hold every write made so far (0 when none is attached).

        Raises:
            NotReplicated: a replica is attached, but none acknowledged within the timeout.
        """
        if self.timeout_ms <= 0 or self._unsupported or not self.replicas(connection):
            return 0
        pipe = connection.pipeline(transaction=False)
        pipe.publish(replication_probe_channel(), job_id)
        pipe.wait(1, self.timeout_ms)
        acked = pipe.execute()[1]
        if acked >= 1:
            return acked
        if not self.replicas(connection, fresh=True):
            return 0
        log.warning("job %s: no replica acknowledged it within %d ms", job_id, self.timeout_ms)
        raise NotReplicated(
            f"job {job_id} was queued on the primary but no replica confirmed it within "
            f"{self.timeout_ms} ms, so it could be lost in a failover; it may still run. Retry with the "
            "same Idempotency-Key to get the same job"
        )

    def replicas(self, connection: Redis, fresh: bool = False) -> int:
        """How many replicas the primary has attached, as ROLE said at most RECHECK_S ago."""
        now = self._clock()
        with self._lock:
            if not fresh and self._checked_at is not None and now - self._checked_at < RECHECK_S:
                return self._replicas
        try:
            role = connection.execute_command("ROLE")
        except ResponseError as exc:  # ROLE renamed or refused by a hosted Redis, or fakeredis
            log.warning("cannot ask Redis for its replicas (%s); starts do not wait for a replica", exc)
            self._unsupported = True
            return 0
        replicas = len(role[2]) if role and role[0] in (b"master", "master") else 0
        with self._lock:
            self._replicas, self._checked_at = replicas, now
        return replicas
