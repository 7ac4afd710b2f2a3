"""The Procfile's worker line: `python -m scripts.workers rq worker ...` runs that command
WORKER_CONCURRENCY times (default: the core count), so jobs run side by side.

Each copy is a whole `rq worker` of its own, so every property of one worker holds for each (the
warm horse, stop, timeouts, crash isolation, the reliable dequeue, `rq info` and the dashboard
listing it). `rq worker-pool` was not used: rq 3.0's pool builds its workers without the CLI's
`--job-monitoring-interval` and `--maintenance-interval` (the lost-job deadline depends on the first)
and polls its children once a second with no backoff.

WORKER_CONCURRENCY=1 execs the command itself: the process is the worker, as before. Otherwise
this process forwards SIGTERM and SIGINT to every copy (the first is RQ's warm shutdown, a second
its cold one) and exits once all have; a copy that dies otherwise is restarted after a backoff, and
what it left in its process group (its scheduler child, holding its Redis socket) is killed first.
Copies die with this process (PR_SET_PDEATHSIG) and stay in its session, so `make run`'s
supervisor and watchdog reach them. A `--name` given to the command gets a suffix per copy.
"""

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time

log = logging.getLogger("workers")

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0)
# A copy that lived this long before dying is restarted after the shortest backoff again.
STAYED_UP_S = 30.0
POLL_S = 0.5
PR_SET_PDEATHSIG = 1
_NAME_OPTIONS = ("--name", "-n")


def concurrency(env: dict[str, str] | os._Environ = os.environ) -> int:
    """How many worker processes to run: WORKER_CONCURRENCY, else the core count.

    Raises:
        SystemExit: WORKER_CONCURRENCY is not a whole number of at least 1.
    """
    raw = env.get("WORKER_CONCURRENCY") or ""
    if not raw:
        return os.cpu_count() or 1
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"WORKER_CONCURRENCY must be a whole number of at least 1, not {raw!r}")
    return int(raw)


def copy_argv(argv: list[str], index: int) -> list[str]:
    """The command for copy `index` (1-based): a given worker name gets "-<index>" (names are unique)."""
    argv = list(argv)
    for position, arg in enumerate(argv):
        if arg in _NAME_OPTIONS and position + 1 < len(argv):
            argv[position + 1] = f"{argv[position + 1]}-{index}"
        elif arg.startswith("--name="):
            argv[position] = f"{arg}-{index}"
    return argv


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Copies:
    """The running copies of one command, restarted when they die unasked."""

    def __init__(self, argv: list[str], count: int) -> None:
        self.argv = argv
        self.processes: dict[int, subprocess.Popen | None] = dict.fromkeys(range(1, count + 1))
        self.started_at: dict[int, float] = {}
        self.deaths: dict[int, int] = dict.fromkeys(self.processes, 0)
        self.restart_at: dict[int, float] = {}
        self.stopping = threading.Event()

    def start(self, index: int) -> None:
        """Start copy `index` in a process group of its own (in this session)."""
        process = subprocess.Popen(copy_argv(self.argv, index), process_group=0, preexec_fn=_die_with_parent)
        self.processes[index] = process
        self.started_at[index] = time.monotonic()
        self.restart_at.pop(index, None)
        log.info("started worker %d of %d (pid %d)", index, len(self.processes), process.pid)

    def signal_all(self, signum: int) -> None:
        """Pass a signal on to every running copy."""
        self.stopping.set()
        for process in self.processes.values():
            if process is not None and process.poll() is None:
                process.send_signal(signum)

    def check(self) -> None:
        """Restart copies that died unasked (after their backoff); kill what each left in its group."""
        now = time.monotonic()
        for index, process in self.processes.items():
            if index in self.restart_at:
                if now >= self.restart_at[index]:
                    self.start(index)
                continue
            if process is None or process.poll() is None:
                continue
            _kill_group(process.pid)
            lived = now - self.started_at[index]
            self.deaths[index] = 0 if lived >= STAYED_UP_S else self.deaths[index] + 1
            delay = RESTART_BACKOFF_S[min(self.deaths[index], len(RESTART_BACKOFF_S) - 1)]
            log.warning(
                "worker %d exited with %s after %.1f s; restarting in %.0f s",
                index,
                process.returncode,
                lived,
                delay,
            )
            self.restart_at[index] = now + delay

    def wait_all(self) -> None:
        """Wait for every copy to exit, then kill what they left in their groups."""
        for process in self.processes.values():
            if process is not None:
                process.wait()
                _kill_group(process.pid)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the command given as arguments WORKER_CONCURRENCY times until asked to stop."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        raise SystemExit("usage: python -m scripts.workers rq worker [options] [queues]")
    count = concurrency()
    if count == 1:
        os.execvp(argv[0], argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s workers: %(message)s")
    copies = Copies(argv, count)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, _frame: copies.signal_all(signum))
    for index in copies.processes:
        copies.start(index)
    while not copies.stopping.wait(POLL_S):
        copies.check()
    copies.wait_all()
    log.info("all %d workers stopped", count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
