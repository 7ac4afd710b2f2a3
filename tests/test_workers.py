"""The worker line's launcher (`scripts/workers.py`): WORKER_CONCURRENCY copies of one command."""

import os
import signal
import subprocess
import sys

import pytest

from scripts.workers import concurrency, copy_argv
from support.servers import ROOT, rq_worker_argv
from support.wait import wait_until

# A stand-in worker: notes its start, exits 0 on SIGTERM (RQ's warm shutdown), else runs on.
FAKE_WORKER = 'echo "$$" >> {starts}; trap "exit 0" TERM; while :; do sleep 0.05; done'


def test_concurrency_defaults_to_the_core_count_and_reads_worker_concurrency():
    assert concurrency({}) == (os.cpu_count() or 1)
    assert concurrency({"WORKER_CONCURRENCY": "3"}) == 3


@pytest.mark.parametrize("raw", ["0", "-1", "two"])
def test_a_bad_worker_concurrency_stops_with_a_sentence(raw):
    with pytest.raises(SystemExit, match="WORKER_CONCURRENCY"):
        concurrency({"WORKER_CONCURRENCY": raw})


def test_each_copy_gets_a_worker_name_of_its_own():
    argv = ["rq", "worker", "--name", "w", "high"]
    assert copy_argv(argv, 2) == ["rq", "worker", "--name", "w-2", "high"]
    assert copy_argv(["rq", "worker", "--name=w"], 1) == ["rq", "worker", "--name=w-1"]
    assert copy_argv(["rq", "worker", "high"], 1) == ["rq", "worker", "high"]


def test_the_procfile_worker_line_runs_the_launcher_around_one_rq_worker():
    assert rq_worker_argv()[:2] == ["rq", "worker"]
    assert "jobs.worker.Worker" in rq_worker_argv()


def test_copies_run_side_by_side_a_dead_one_is_restarted_and_a_signal_stops_all(tmp_path):
    starts = tmp_path / "starts"
    env = {**os.environ, "WORKER_CONCURRENCY": "2"}
    command = [sys.executable, "-m", "scripts.workers", "sh", "-c", FAKE_WORKER.format(starts=starts)]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        first = wait_until(lambda: len(pids := starts.read_text().split()) == 2 and pids, timeout_s=10)
        os.kill(int(first[0]), signal.SIGKILL)
        wait_until(lambda: len(starts.read_text().split()) == 3, timeout_s=10)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_one_copy_is_the_command_itself(tmp_path):
    env = {**os.environ, "WORKER_CONCURRENCY": "1"}
    command = [sys.executable, "-m", "scripts.workers", "sh", "-c", "echo $$"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    output, _ = process.communicate(timeout=10)
    assert int(output) == process.pid  # exec'd: the shell runs in the launcher's own process
