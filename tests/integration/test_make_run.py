"""`make run`'s supervisor: starts the Procfile with an embedded Redis and stops all of it."""

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from redis import Redis
from rq import Worker

from support import proctree
from support.servers import ROOT, free_port, is_listening
from support.sse import read_json_events
from support.wait import wait_until
from tests.integration.conftest import STOP_DEADLINE_S


def processes_with_marker(marker: str) -> list[int]:
    """Pids of processes whose environment carries the marker (everything the supervisor started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture
def supervisor(tmp_path):
    """`python -m scripts.run` (`make run`) with REDIS_URL unset; yields (process, port, marker, log)."""
    yield from launch(tmp_path)


@pytest.fixture
def ha_supervisor(tmp_path):
    """`python -m scripts.run --ha` (`make run-ha`); yields (process, port, marker, log)."""
    yield from launch(tmp_path, "--ha")


def launch(tmp_path, *args: str, env: dict[str, str] | None = None):
    port = free_port()
    extra = env or {}
    marker = f"RUN_TEST_MARKER={uuid.uuid4().hex}"
    generated = ("REDIS_URL", "REDIS_SENTINELS", "SECRET_KEY", "RQ_DASHBOARD_USERNAME")
    generated += ("RQ_DASHBOARD_PASSWORD",)
    env = {key: value for key, value in os.environ.items() if key not in generated}
    env.update(PORT=str(port), STREAMS_PORT=str(free_port()), RUN_TEST_MARKER=marker.split("=", 1)[1])
    env.update(extra)
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        command = [sys.executable, "-m", "scripts.run", *args]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    yield process, port, marker, log_path
    if process.poll() is None:
        # SIGTERM first: only the supervisor can stop the embedded server, whose environ (where the
        # marker would be) Valkey overwrites with its process title.
        process.terminate()
        try:
            process.wait(timeout=STOP_DEADLINE_S * 4)
        except subprocess.TimeoutExpired:
            process.kill()
    for pid in processes_with_marker(marker):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_make_run_serves_the_contract_and_stops_everything(supervisor, signum):
    process, port, marker, log_path = supervisor
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{base}/status/none", timeout=2).status_code == 404, timeout_s=30)
    output = log_path.read_text()
    assert f"App:   http://127.0.0.1:{port}/" in output
    redis_port = int(re.search(r"Redis: redis://127\.0\.0\.1:(\d+)", output).group(1))
    events_port = int(re.search(r"Event streams: port (\d+)", output).group(1))

    response = requests.post(f"{base}/longtask", json={"steps": 2, "step_seconds": 0.05}, timeout=5)
    events_url = response.json()["events_url"]  # on the streams listener: another port
    assert events_url.startswith(f"http://127.0.0.1:{events_port}/status/")
    with requests.get(events_url, stream=True, timeout=10, headers={"Origin": base}) as stream:
        assert stream.headers["Access-Control-Allow-Origin"] == base
        assert read_json_events(stream.iter_content(chunk_size=None))[-1]["result"] == 42
    # The stream's SUCCESS comes from the success callback, before RQ stores the job as finished.
    status_url = base + response.headers["Location"]
    final = wait_until(
        lambda: (body := requests.get(status_url, timeout=2).json())["state"] == "SUCCESS" and body
    )
    assert final["result"] == 42

    process.send_signal(signum)
    assert process.wait(timeout=STOP_DEADLINE_S * 4) == 0
    wait_until(lambda: not processes_with_marker(marker), timeout_s=STOP_DEADLINE_S)
    assert not any(is_listening(open_port) for open_port in (port, events_port, redis_port))


@pytest.fixture
def two_worker_supervisor(tmp_path):
    """`make run` with WORKER_CONCURRENCY=2 (the default on a 2-core machine, pinned here)."""
    yield from launch(tmp_path, env={"WORKER_CONCURRENCY": "2"})


def test_make_run_runs_two_jobs_at_once_on_two_worker_processes(two_worker_supervisor):
    process, port, marker, log_path = two_worker_supervisor
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{base}/status/none", timeout=2).status_code == 404, timeout_s=30)
    redis_port = int(re.search(r"Redis: redis://127\.0\.0\.1:(\d+)", log_path.read_text()).group(1))
    connection = Redis(port=redis_port)
    workers = wait_until(
        lambda: len(names := {w.name for w in Worker.all(connection=connection)}) == 2 and names
    )
    starts = [
        requests.post(f"{base}/longtask", json={"steps": 100, "step_seconds": 0.1}, timeout=5) for _ in "ab"
    ]
    status_urls = [base + response.headers["Location"] for response in starts]
    assert wait_until(
        lambda: all(requests.get(url, timeout=2).json()["state"] == "PROGRESS" for url in status_urls),
        timeout_s=30,
    )
    busy = {worker.name for worker in Worker.all(connection=connection) if worker.get_current_job_id()}
    assert busy == workers
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)  # the second: do not wait for the jobs
    assert process.wait(timeout=STOP_DEADLINE_S * 4) == 0
    wait_until(lambda: not processes_with_marker(marker), timeout_s=STOP_DEADLINE_S)


def children_running(parent: int, word: str) -> list[int]:
    """Pids of the direct children of `parent` with `word` as one of their arguments."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == parent and word.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def test_make_run_prints_dashboard_credentials_and_restarts_a_killed_worker(supervisor):
    process, port, marker, log_path = supervisor
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{base}/status/none", timeout=2).status_code == 404, timeout_s=30)
    user, password = re.search(
        r"Dashboard: \S+/rq/ \(user (\S+), password (\S+)\)", log_path.read_text()
    ).groups()
    workers_url = f"{base}/rq/0/data/workers.json"
    assert requests.get(workers_url, timeout=5).status_code == 401
    wait_until(lambda: requests.get(workers_url, auth=(user, password), timeout=5).json()["workers"])

    (worker_pid,) = wait_until(lambda: children_running(process.pid, "worker"), timeout_s=10)
    os.kill(worker_pid, signal.SIGKILL)
    restarted = wait_until(
        lambda: [pid for pid in children_running(process.pid, "worker") if pid != worker_pid]
    )
    assert "worker exited with -9" in log_path.read_text()

    response = requests.post(f"{base}/longtask", json={"steps": 1, "step_seconds": 0}, timeout=5)
    status_url = base + response.headers["Location"]
    wait_until(lambda: requests.get(status_url, timeout=2).json()["state"] == "SUCCESS", timeout_s=30)
    assert restarted and process.poll() is None
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=STOP_DEADLINE_S * 4) == 0


def start_ten_minute_job(base: str) -> None:
    """Once the app at `base` answers, start a 10-minute demo job and wait until it runs."""
    wait_until(lambda: requests.get(f"{base}/status/none", timeout=2).status_code == 404, timeout_s=30)
    response = requests.post(f"{base}/longtask", json={"steps": 600, "step_seconds": 1}, timeout=5)
    status_url = base + response.headers["Location"]
    wait_until(lambda: requests.get(status_url, timeout=2).json()["state"] == "PROGRESS", timeout_s=30)


def test_a_second_signal_stops_at_once_without_waiting_for_a_running_job(supervisor):
    process, port, marker, log_path = supervisor
    start_ten_minute_job(f"http://127.0.0.1:{port}")

    process.send_signal(signal.SIGTERM)  # warm shutdown: the worker would wait for its job
    wait_until(lambda: "Ctrl-C again to stop now" in log_path.read_text(), timeout_s=STOP_DEADLINE_S)
    assert process.poll() is None
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=STOP_DEADLINE_S) == 0
    wait_until(lambda: not processes_with_marker(marker), timeout_s=STOP_DEADLINE_S)
    assert "asked again: killing what is still running" in log_path.read_text()


def command_lines_under(root: int) -> dict[int, str]:
    """Every living process under `root` (children, grandchildren...), pid -> command line."""
    found = {}
    for pid in proctree.descendants(root):
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for init to reap it does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_nothing_outlives_make_run_killed_with_sigkill_mid_job(supervisor):
    process, port, marker, log_path = supervisor
    start_ten_minute_job(f"http://127.0.0.1:{port}")
    tree = command_lines_under(process.pid)
    kinds = " ".join(tree.values())
    assert "gunicorn" in kinds and "rq worker" in kinds and "scripts.watchdog" in kinds, tree
    assert len([cmd for cmd in tree.values() if "rq worker" in cmd]) >= 3  # worker, scheduler, horse

    process.kill()
    process.wait(timeout=STOP_DEADLINE_S)
    wait_until(lambda: not [pid for pid in tree if alive(pid)], timeout_s=STOP_DEADLINE_S)
    assert not is_listening(port)


def test_make_run_ha_fails_over_when_the_primary_is_killed(ha_supervisor):
    process, port, marker, log_path = ha_supervisor
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{base}/healthz", timeout=2).status_code == 200, timeout_s=60)
    primary = int(re.search(r"kill -9 (\d+)", log_path.read_text()).group(1))
    response = requests.post(f"{base}/longtask", json={"steps": 30, "step_seconds": 0.2}, timeout=5)
    status_url = base + response.headers["Location"]
    wait_until(lambda: requests.get(status_url, timeout=2).json()["state"] == "PROGRESS", timeout_s=30)
    tree = command_lines_under(process.pid)

    os.kill(primary, signal.SIGKILL)
    wait_until(lambda: "failover: the primary is now" in log_path.read_text(), timeout_s=30)
    wait_until(lambda: requests.get(status_url, timeout=2).json()["state"] == "SUCCESS", timeout_s=30)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=STOP_DEADLINE_S * 4) == 0
    wait_until(lambda: not [pid for pid in tree if alive(pid)], timeout_s=STOP_DEADLINE_S)
