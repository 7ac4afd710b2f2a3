"""Jobs the benchmark runs: a no-op for plain RQ (the floor of our overhead), and a job whose pace changes."""

import time

from jobs.progress import report


def noop() -> None:
    """Do nothing; the short-job throughput figure times RQ itself."""


def two_speeds(steps: int, first_s: float, then_s: float) -> int:
    """Report `steps` steps, the first half `first_s` apart and the rest `then_s` apart."""
    report(0, steps, "starting")
    for done in range(1, steps + 1):
        time.sleep(first_s if done <= steps // 2 else then_s)
        report(done, steps, f"step {done}")
    return steps
