"""The `make run` supervisor's restart policy, on real (tiny) shell processes."""

import resource
import subprocess
import threading

import pytest

from scripts import run
from scripts.run import Managed, read_procfile, supervise
from support.wait import wait_until


@pytest.fixture(autouse=True)
def fast_restarts(monkeypatch):
    monkeypatch.setattr(run, "RESTART_BACKOFF_S", (0.0,))
    monkeypatch.setattr(run, "POLL_S", 0.02)


def test_procfile_lines_become_named_commands(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("# comment\n\nweb: gunicorn app:x --bind :$PORT\nworker: rq worker a b\n")
    assert [(entry.name, entry.command) for entry in read_procfile(procfile)] == [
        ("web", "gunicorn app:x --bind :$PORT"),
        ("worker", "rq worker a b"),
    ]


def test_a_command_that_never_stays_up_is_given_up(tmp_path):
    entry = Managed("broken", "exit 3")
    assert supervise([entry], {"PATH": "/usr/bin:/bin"}, threading.Event()) == 1
    assert entry.quick_deaths == run.MAX_QUICK_DEATHS


def test_a_process_that_ran_before_is_restarted_for_as_long_as_it_takes(tmp_path):
    starts = tmp_path / "starts"
    entry = Managed("worker", f"echo started >> {starts}; exit 1", stayed_up=True)
    stopping = threading.Event()
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(code=supervise([entry], {"PATH": "/bin"}, stopping))
    )
    thread.start()
    try:
        wait_until(lambda: starts.exists() and len(starts.read_text().split()) > run.MAX_QUICK_DEATHS + 1)
    finally:
        stopping.set()
        thread.join(timeout=10)
    assert result == {"code": 0}


def test_the_open_file_limit_is_raised_to_the_hard_limit_for_every_child():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        assert run.raise_open_files_limit() == hard
        child = subprocess.run(["/bin/sh", "-c", "ulimit -n"], capture_output=True, text=True, check=True)
        assert child.stdout.strip() in (str(hard), "unlimited")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
