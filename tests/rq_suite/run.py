"""`make conformance`: RQ's own test suite, from the pinned RQ's sdist, run against our worker.

    python -m tests.rq_suite.run [--stock] [pytest args...]

Fetches `rq==<the pin in requirements.txt>` as an sdist into `.venv/rq-suite/` (once; RQ's tests are
never copied into the repository), unpacks its `tests/` there, and runs `SUITE_FILES` on two
processes with `plugin.py` loaded. PYTHONPATH holds a directory of links to `jobs/`, `support/` and
this package (not the repository root: our `tests` package would hide RQ's) and RQ's unpacked tree;
the venv's `bin` goes first on PATH for the `rqworker` that RQ's tests start. `--stock` runs RQ's
own worker instead (to see which tests fail here whatever the worker). Needs the local Redis on
127.0.0.1:6379, where RQ's tests connect; without it, or without the sdist, the run is skipped,
except in CI (`CI` set), where either fails it.
"""

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from redis import Redis

from jobs.worker.versions import OVERRIDE_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".venv" / "rq-suite"
SUITE_FILES = (
    "worker",
    "job_lifecycle",
    "callbacks",
    "dependencies",
    "job_dependency",
    "retry",
    "commands",
    "executions",
    "registry",
    "results",
    "group",
    "repeat",
    "timeouts",
    "intermediate_queue",
    "scheduler",
)
# Per test: far above any of RQ's (the longest take about 10 s), so only a hang reaches it. On a
# thread: RQ's death penalty uses SIGALRM, whose timer pytest-timeout's signal method would share.
TEST_TIMEOUT_S = 120


def pinned_rq_version(requirements: Path = ROOT / "requirements.txt") -> str:
    """The version `requirements.txt` pins rq to.

    Raises:
        ValueError: rq is not pinned with `==`.
    """
    found = re.search(r"^rq==([^\s#]+)", requirements.read_text(), re.MULTILINE)
    if found is None:
        raise ValueError(f"{requirements} does not pin rq with ==")
    return found.group(1)


def fetch_rq_tests(version: str) -> Path:
    """Download RQ's sdist (once) and unpack its tests; return the directory holding `tests/`.

    Only `tests/` and `pyproject.toml` (its pytest settings) are unpacked: RQ's `rq/` package would
    shadow the installed one.

    Raises:
        subprocess.CalledProcessError: pip could not download the sdist.
    """
    sdist = CACHE / f"rq-{version}.tar.gz"
    if not sdist.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
            + ["--no-deps", "--no-binary", ":all:", f"rq=={version}", "--dest", str(CACHE)],
            check=True,
        )
    tree = CACHE / f"rq-{version}"
    if not (tree / "tests" / "__init__.py").exists():
        prefix = f"rq-{version}/"
        with tarfile.open(sdist) as archive:
            wanted = [
                member
                for member in archive.getmembers()
                if member.name.startswith(prefix + "tests/") or member.name == prefix + "pyproject.toml"
            ]
            archive.extractall(CACHE, members=wanted, filter="data")
    return tree


def link_our_code() -> Path:
    """A directory for PYTHONPATH with links to `jobs/`, `support/`, this package and its sitecustomize."""
    links = CACHE / "path"
    links.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).resolve().parent
    for name, target in {
        "jobs": ROOT / "jobs",
        "support": ROOT / "support",
        "rq_suite": here,
        "sitecustomize.py": here / "sitecustomize.py",
    }.items():
        link = links / name
        if not link.is_symlink() or link.resolve() != target:
            link.unlink(missing_ok=True)
            link.symlink_to(target)
    return links


def unavailable(reason: str) -> int:
    """Skip the run outside CI; fail it in CI."""
    if os.environ.get("CI"):
        print(f"conformance: {reason} (required in CI)", file=sys.stderr)
        return 1
    print(f"conformance: skipped, {reason}", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    """Run RQ's suite; the exit status is pytest's (0 when only listed tests failed)."""
    stock = "--stock" in argv
    pytest_args = [arg for arg in argv if arg != "--stock"]
    try:
        Redis(socket_connect_timeout=1).ping()
    except Exception as exc:
        return unavailable(f"no Redis on 127.0.0.1:6379, where RQ's tests connect: {exc}")
    version = pinned_rq_version()
    try:
        tree = fetch_rq_tests(version)
    except subprocess.CalledProcessError as exc:
        return unavailable(f"could not download rq=={version}'s sdist: {exc}")
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "RQ_SUITE_WORKER": "stock" if stock else "ours",
        "PYTHONPATH": os.pathsep.join([str(link_our_code()), str(tree)]),
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        # This run is how an RQ release gets verified: the worker's guard must let it through.
        OVERRIDE_VARIABLE: "1",
    }
    env.pop("RUN_SLOW_TESTS_TOO", None)
    env.pop("RQ_SUITE_DB", None)
    files = [f"tests/test_{name}.py" for name in SUITE_FILES]
    command = [sys.executable, "-m", "pytest", "-p", "rq_suite.plugin", "-p", "no:cacheprovider"]
    command += ["-n", "2", "-q", "-ra", f"--timeout={TEST_TIMEOUT_S}", "--timeout-method=thread"]
    command += [*files, *pytest_args]
    print(f"conformance: rq=={version}'s suite against {'RQ' if stock else 'our'} worker", flush=True)
    return subprocess.run(command, cwd=tree, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
