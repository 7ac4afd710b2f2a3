"""Kill everything `make run` started once `make run` is gone, even when it was SIGKILLed.

`make run` starts each process in a session of its own, and those fork further: gunicorn's
workers, RQ's work horse (in a process group of its own) and scheduler. PR_SET_PDEATHSIG reaches
only a direct child, so the launcher also starts this watchdog, in its own session so that the
terminal's Ctrl-C does not reach it, and tells it on its stdin every session it starts
(`session <sid>`) and every other process it owns (`pid <pid>`). When that pipe closes (the
launcher exited, however it died) the watchdog SIGKILLs every process left in those sessions
and the listed processes, then exits. After a clean stop there is nothing left to kill.
"""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

# How long to keep killing: a process may fork once more while its session is being killed.
KILL_DEADLINE_S = 10.0


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    return text.rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart), or None if gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def session_members(sids: set[int]) -> list[int]:
    """Pids of the living processes in any of these sessions (zombies excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and fields[0] != "Z" and int(fields[3]) in sids:
                members.append(int(entry.name))
    return members


def kill_all(sids: set[int], pids: dict[int, int], deadline_s: float = KILL_DEADLINE_S) -> int:
    """SIGKILL every process in `sids` and every pid in `pids` (pid -> start time) until none is left.

    Returns:
        How many processes were killed.
    """
    killed: set[int] = set()
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        targets = session_members(sids) + [pid for pid, started in pids.items() if start_time(pid) == started]
        targets = [pid for pid in targets if pid != os.getpid()]
        if not targets:
            break
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    return len(killed)


class Guard:
    """The launcher's half: starts the watchdog and tells it each session and process to kill later."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scripts.watchdog"],
            stdin=subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
            start_new_session=True,
            text=True,
            bufsize=1,
        )

    def tell(self, kind: str, value: int) -> None:
        """Write `session <sid>` or `pid <pid>` to the watchdog."""
        try:
            self.process.stdin.write(f"{kind} {value}\n")
        except (BrokenPipeError, ValueError):
            log.warning("the watchdog is gone: processes may outlive a killed make run")

    def close(self) -> None:
        """Close its pipe (after a clean stop it finds nothing left to kill) and wait for it."""
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        self.process.wait(timeout=KILL_DEADLINE_S + 5)


def watch(lines) -> None:
    """Collect sessions and pids from `lines` until they end, then kill what is left of them."""
    sids: set[int] = set()
    pids: dict[int, int] = {}
    for line in lines:
        kind, _, value = line.strip().partition(" ")
        if kind == "session":
            sids.add(int(value))
        elif kind == "forget":
            sids.discard(int(value))
        elif kind == "pid" and (started := start_time(int(value))) is not None:
            pids[int(value)] = started
    killed = kill_all(sids, pids)
    if killed:
        print(f"watchdog: make run is gone; killed {killed} process(es) it had left", file=sys.stderr)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(sys.stdin)
