"""`make run-ha`: a local Sentinel-managed Valkey to run the app on, and word of each failover.

The servers come from `support.sentinel`; `scripts.run` supervises them like the Procfile's
processes, except that a killed server comes back only SERVER_RESTART_S later: by then the
sentinels have failed over, and they make a returning primary a replica of the new one.
"""

import tempfile
import threading
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from scripts.watchdog import Guard
from support.sentinel import SentinelCluster

# A killed Redis server comes back this much later (after the failover), as a replica.
SERVER_RESTART_S = 10.0
# Sentinel declares a silent primary down after this long; then the election takes about a second.
DOWN_AFTER_MS = 2000


def start_cluster(guard: Guard) -> SentinelCluster:
    """Start a primary, a replica and three sentinels, each in a session the watchdog knows."""
    workdir = Path(tempfile.mkdtemp(prefix="rq-progress-ha-"))
    timing = {"down_after_ms": DOWN_AFTER_MS, "failover_timeout_ms": DOWN_AFTER_MS * 2}
    cluster = SentinelCluster(workdir, **timing)
    try:
        cluster.start()
    except TimeoutError as exc:
        cluster.stop()
        raise SystemExit(f"make run-ha: {exc}") from None
    for node in cluster.nodes:
        guard.tell("session", node.process.pid)
    return cluster


def watch_failovers(cluster: SentinelCluster, stopping: threading.Event) -> None:
    """Print each failover the sentinels announce (`+switch-master`), with how to cause the next."""
    while not stopping.is_set():
        for host, port in cluster.sentinel_addresses:
            try:
                with Redis(host, port, socket_timeout=5, decode_responses=True) as sentinel:
                    pubsub = sentinel.pubsub()
                    pubsub.subscribe("+switch-master")
                    while not stopping.is_set():
                        message = pubsub.get_message(timeout=1.0)
                        if message and message["type"] == "message":
                            _, _, _, new_host, new_port = message["data"].split()
                            print_primary(new_host, int(new_port), "failover: the primary is now")
            except (RedisError, OSError, ValueError):
                continue
        stopping.wait(1.0)


def print_primary(host: str, port: int, lead: str) -> None:
    """Say where the primary is and how to kill it."""
    try:
        with Redis(host, port, socket_timeout=2) as primary:
            pid = primary.info("server")["process_id"]
    except RedisError:
        print(f"{lead} {host}:{port}", flush=True)
        return
    print(
        f"{lead} {host}:{port} (pid {pid}). Kill it and watch the failover: kill -9 {pid} "
        f"(it comes back {SERVER_RESTART_S:.0f} s later as a replica)",
        flush=True,
    )
