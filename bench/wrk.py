"""HTTP load from wrk, Debian's native generator, so the client does not favour either server.

`wrk -t2 -c64 -d5s` drives one URL closed-loop (64 connections, each sends its next request when
its answer is in) with `bench/wrk_count.lua`, which counts the answers by status. Only the
expected status counts as throughput; every other answer is a refusal, reported beside it.
wrk's latency percentiles cover every answer it completed within `--timeout`, whatever its
status; requests still unanswered at the timeout are counted as timeouts and left out.
"""

import json
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().with_name("wrk_count.lua")
THREADS = 2
CONNECTIONS = 64
TIMEOUT_S = 10
MARK = "WRK_RESULT "


def ensure_installed() -> str:
    """The path of `wrk`; exits with the install command when it is missing (`make bench` installs it)."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is missing: `make bench` installs it (as root), or `apt-get install wrk`")
    return path


def version() -> str:
    """wrk's version line, e.g. `debian/4.1.0-3+b2 [epoll]`."""
    done = subprocess.run([ensure_installed(), "--version"], capture_output=True, text=True)
    first = (done.stdout or done.stderr).splitlines()[0]
    return first.split("Copyright")[0].removeprefix("wrk").strip()


def run(
    url: str,
    method: str = "GET",
    body: str = "",
    headers: dict[str, str] | None = None,
    duration_s: float = 5.0,
) -> dict:
    """One wrk run; returns the command, wrk's whole output and the script's parsed result.

    Raises:
        RuntimeError: wrk failed or printed no result line.
    """
    command = [
        ensure_installed(),
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{duration_s:g}s",
        f"--timeout={TIMEOUT_S}s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        method,
        body,
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + TIMEOUT_S + 30)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
    return {"command": command[1:], "output": done.stdout, "result": json.loads(lines[-1][len(MARK) :])}


def figures(result: dict, success: int) -> dict:
    """Throughput of `success` answers only, refusals and errors beside it, latency in ms.

    `latency_of` says which answers wrk's percentiles include: successes only when every
    completed answer was a success, otherwise successes and refusals mixed.
    """
    seconds = result["duration_us"] / 1e6
    statuses = {str(status): count for status, count in result["statuses"].items()}
    ok = statuses.get(str(success), 0)
    refused = sum(count for status, count in statuses.items() if status != str(success))
    errors = {name: count for name, count in result["errors"].items() if name != "status"}
    latency = result["latency_us"]
    return {
        "ok_per_s": round(ok / seconds, 1),
        "refused_per_s": round(refused / seconds, 1),
        "ok": ok,
        "refused": refused,
        "socket_errors": sum(errors.values()),
        "p50_ms": round(latency["p50"] / 1000, 2),
        "p90_ms": round(latency["p90"] / 1000, 2),
        "p99_ms": round(latency["p99"] / 1000, 2),
        "latency_of": f"{success} only" if refused == 0 else f"{success} and refusals mixed",
        "statuses": statuses,
        "errors": errors,
    }
