"""Job functions used only by tests; importable by a worker subprocess (`--path` repo root)."""

import os
import time

from jobs.progress import report


def fail(message: str) -> None:
    """Report one step, then raise ValueError(message)."""
    report(1, 2, "about to fail")
    raise ValueError(message)


def fail_without_message() -> None:
    """Raise an exception that carries no message."""
    raise KeyError


def answer(value=42):
    """Return `value` without reporting progress."""
    return value


def count(total: int) -> dict:
    """Report every step up to `total` as fast as possible."""
    for done in range(1, total + 1):
        report(done, total, f"step {done} of {total}")
    return {"counted": total}


def report_at(moments: list[float], total: int) -> None:
    """Report step n at clock time moments[n-1], so coalescing is deterministic."""
    for done, moment in enumerate(moments, start=1):
        report(done, total, f"step {done}", clock=lambda moment=moment: moment)


def wait_for_file(path: str, timeout_s: float = 60.0) -> str:
    """Wait, without touching Redis, until `path` exists; tests create it to let the job finish."""
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout_s} s")
        time.sleep(0.05)
    return path
