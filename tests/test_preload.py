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


def test_procfile_worker_preloads_the_job_modules():
    worker = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("worker:"))
    assert " -c jobs.preload " in worker
