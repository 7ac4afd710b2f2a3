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

from tests.helpers import free_port, is_listening, wait_until
from tests.integration.conftest import ROOT, STOP_DEADLINE_S


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
    """`scripts/run.py` (what `make run` execs) with REDIS_URL unset; yields (process, port, marker, log)."""
    port = free_port()
    marker = f"RUN_TEST_MARKER={uuid.uuid4().hex}"
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "SECRET_KEY")}
    env.update(PORT=str(port), RUN_TEST_MARKER=marker.split("=", 1)[1])
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "scripts/run.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    yield process, port, marker, log_path
    if process.poll() is None:
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

    response = requests.post(f"{base}/longtask", json={"steps": 2, "step_seconds": 0.05}, timeout=5)
    status_url = base + response.headers["Location"]
    final = wait_until(
        lambda: (body := requests.get(status_url, timeout=2).json())["state"] == "SUCCESS" and body
    )
    assert final["result"] == 42

    process.send_signal(signum)
    assert process.wait(timeout=STOP_DEADLINE_S * 4) == 0
    wait_until(lambda: not processes_with_marker(marker), timeout_s=STOP_DEADLINE_S)
    assert not is_listening(port) and not is_listening(redis_port)
