"""Several "hosts" on one machine: Linux network namespaces joined by a bridge (needs root and iproute2).

`Network` makes a switch namespace holding a bridge, one namespace per host with a veth pair into
that bridge, and one more veth pair from the caller's namespace, so the caller (a test, the chaos
run) reaches every host. Addresses come from 198.18.0.0/15, the range set aside for network tests.
Names carry a random token, so runs side by side do not collide; `close()` kills what runs in the
namespaces and deletes them (and with them the veth pairs), also after a failed start.
"""

import os
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass, field

SUBNET_PREFIX = "198.18"
# Interface names are at most 15 characters.
_TOKEN_LEN = 6


def available() -> str | None:
    """Why namespaces cannot be made here, or None when they can (root and `ip` are needed)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2's `ip`"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@dataclass
class Host:
    """One namespace on the bridge: its name and address."""

    name: str
    address: str

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def pids(self) -> list[int]:
        """Every process running in this host's namespace."""
        listing = subprocess.run(
            ["ip", "netns", "pids", self.name], capture_output=True, text=True, timeout=30
        ).stdout
        return [int(pid) for pid in listing.split()]

    def kill_all(self) -> int:
        """SIGKILL every process in the namespace (a lost host); returns how many there were."""
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def unplug(self) -> None:
        """Take the host's network link down: its peers get no FIN or RST, as when a host is lost."""
        _ip("-n", self.name, "link", "set", "eth0", "down")


@dataclass
class Network:
    """A bridge and hosts on it; use as a context manager or call `close()`."""

    hosts: dict[str, Host] = field(default_factory=dict)
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:_TOKEN_LEN])
    subnet: int = field(default_factory=lambda: int.from_bytes(os.urandom(1), "big"))
    _namespaces: list[str] = field(default_factory=list)
    _root_link: str | None = None

    @property
    def switch(self) -> str:
        return f"rqp{self.token}sw"

    def _address(self, n: int) -> str:
        return f"{SUBNET_PREFIX}.{self.subnet}.{n}"

    def start(self, *names: str) -> "Network":
        """Create the bridge, the named hosts and the caller's link to them."""
        try:
            self._add_namespace(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            self._root_link = f"rqp{self.token}r0"
            _ip("link", "add", self._root_link, "type", "veth", "peer", "name", "r1", "netns", self.switch)
            self._plug("r1")
            _ip("addr", "add", f"{self._address(1)}/24", "dev", self._root_link)
            _ip("link", "set", self._root_link, "up")
            for n, name in enumerate(names, start=2):
                self.hosts[name] = self._add_host(name, self._address(n))
        except BaseException:
            self.close()
            raise
        return self

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _plug(self, port: str) -> None:
        _ip("-n", self.switch, "link", "set", port, "master", "br0")
        _ip("-n", self.switch, "link", "set", port, "up")

    def _add_host(self, name: str, address: str) -> Host:
        namespace = f"rqp{self.token}{name}"[:15]
        port = f"p{name}"[:15]
        self._add_namespace(namespace)
        peer = ("peer", "name", port, "netns", self.switch)
        _ip("link", "add", "eth0", "netns", namespace, "type", "veth", *peer)
        self._plug(port)
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        return Host(namespace, address)

    def close(self) -> None:
        """Kill every process in the hosts, delete the namespaces and the caller's link."""
        for host in self.hosts.values():
            host.kill_all()
        if self._root_link is not None:
            subprocess.run(["ip", "link", "del", self._root_link], capture_output=True, timeout=30)
            self._root_link = None
        for name in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        self._namespaces.clear()

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
