import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import sys
import jobs.preload as preload
print(" ".join(sorted(name for name in sys.modules if name.startswith("jobs"))))
print(" ".join(name for name in vars(preload) if name.upper() == name))
"""


def test_preload_loads_the_job_modules_and_sets_no_worker_settings():
    lines = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
    ).stdout.splitlines()
    assert {"jobs.demo", "jobs.progress", "jobs.callbacks", "jobs.contract"} <= set(lines[0].split())
    assert lines[1] == ""


def test_procfile_worker_reads_its_settings_module():
    worker = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("worker:"))
    assert " -c jobs.worker.settings " in worker


def test_worker_settings_preload_the_job_modules_and_name_redis():
    probe = PROBE.replace("jobs.preload", "jobs.worker.settings")
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:1/0"}
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, env=env)
    lines = run.stdout.splitlines()
    assert {"jobs.demo", "jobs.progress", "jobs.contract"} <= set(lines[0].split())
    assert lines[1].split() == ["REDIS_URL", "SENTINEL"]


def test_worker_settings_stop_the_worker_with_a_sentence_on_bad_settings():
    env = {"PATH": "/usr/bin:/bin", "REDIS_SENTINELS": "127.0.0.1:1"}
    run = subprocess.run(
        [sys.executable, "-c", "import jobs.worker.settings"],
        cwd=ROOT,
        text=True,
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "rq worker: REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER (the primary's name) is not"
    )
