"""Job functions used only by tests; importable by a worker subprocess (`--path` repo root)."""

import os
import time
from typing import Any

from pydantic import Field

from jobs.params import Params, RetryPolicy
from jobs.progress import report
from jobs.registry import JobSpec


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


def report_at(moments: list[float], total: int, log: bool = False) -> None:
    """Report step n at clock time moments[n-1], so coalescing is deterministic."""
    for done, moment in enumerate(moments, start=1):
        report(done, total, f"step {done}", log=log, clock=lambda moment=moment: moment)


class FailTimesArgs(Params):
    """The parameters of `fail_times`, for tests that register it as a startable job."""

    key: str
    failures: int = Field(ge=0, le=5)


def flaky_job(intervals_s: tuple[int, ...], **policies: Any) -> "JobSpec":
    """`fail_times` as a startable job named "flaky", retried twice `intervals_s` apart."""
    from jobs.registry import JobSpec

    retry = RetryPolicy(max=2, intervals_s=intervals_s)
    return JobSpec(
        name="flaky", func="tests.fixture_jobs.fail_times", params=FailTimesArgs, retry=retry, **policies
    )


def fail_times(key: str, failures: int) -> str:
    """Fail the first `failures` attempts (counted in Redis under `key`), then succeed."""
    from rq import get_current_job

    attempt = get_current_job().connection.incr(key)
    report(attempt, failures + 1, f"attempt {attempt}")
    if attempt <= failures:
        raise RuntimeError(f"attempt {attempt} failed")
    return f"succeeded on attempt {attempt}"


def count_until_stopped(total: int) -> dict:
    """Report every step up to `total`; stops when asked to, between steps."""
    from rq import get_current_job

    from jobs.control import request_stop

    job = get_current_job()
    for done in range(1, total + 1):
        if done == 3:
            request_stop(job.connection, job.id)
        report(done, total, f"step {done} of {total}", clock=lambda done=done: float(done))
    return {"counted": total}


def wait_for_stop(key: str, timeout_s: float = 20.0) -> str:
    """Report progress until asked to stop (set `key` once running); fail if never asked."""
    import time

    from rq import get_current_job

    from jobs.control import stop_requested

    get_current_job().connection.set(key, "running")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stop_requested():
            return "saw the stop request"
        time.sleep(0.02)
    raise TimeoutError("nobody asked me to stop")


def wait_for_file(path: str, timeout_s: float = 60.0) -> str:
    """Wait, without touching Redis, until `path` exists; tests create it to let the job finish."""
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout_s} s")
        time.sleep(0.05)
    return path


def report_then_wait(path: str, timeout_s: float = 60.0) -> str:
    """Report step 1 of 4, then wait until `path` exists (or it is stopped)."""
    report(1, 4, "first of four")
    return wait_for_file(path, timeout_s)


def write_lines(messages: list[str], level: str = "info") -> int:
    """Write each message to the job's log; returns how many."""
    from jobs.joblog import log

    for message in messages:
        log(message, level)
    return len(messages)


def log_records() -> None:
    """Emit standard `logging` records: info, debug, warning, an exception, and one of rq's."""
    import logging

    logger = logging.getLogger(__name__)
    logger.info("fetching %s", "page 1")
    logger.debug("too fine to keep")
    logger.warning("slow answer")
    try:
        raise ValueError("bad page")
    except ValueError:
        logger.exception("giving up on page 2")
    logging.getLogger("rq.worker").info("rq's own line")


def log_then_fail(message: str) -> None:
    """Write one line to the job's log, then raise ValueError(message)."""
    from jobs.joblog import log

    log("about to fail", "error")
    raise ValueError(message)


ODD_RESULTS = {
    "set": lambda: {3, 1},
    "bytes": lambda: b"\xff\x00raw",
    "complex": lambda: 1 + 2j,
    "nan": lambda: {"ratio": float("nan"), "top": float("inf")},
    "tuple_keys": lambda: {(1, 2): "pair"},
    "object": lambda: Opaque(),
}


class Opaque:
    """A value JSON knows nothing about, with a stable text."""

    def __str__(self) -> str:
        return "an opaque value"


def odd_result(kind: str):
    """Return a value JSON cannot hold as it is (see ODD_RESULTS)."""
    return ODD_RESULTS[kind]()


def markup() -> str:
    """Return markup that would run script if a page rendered it unescaped."""
    return "<img src=x onerror=\"document.title='pwned'\">"


def horse_pid() -> int:
    """Return the pid of the process running the job (the work horse)."""
    return os.getpid()


def pid_then_wait(key: str, path: str, timeout_s: float = 60.0) -> str:
    """Store this process's pid under `key`, then wait until `path` exists."""
    from rq import get_current_job

    get_current_job().connection.set(key, os.getpid())
    return wait_for_file(path, timeout_s)


def exit_hard(code: int = 3) -> None:
    """End the work horse with os._exit(code), skipping every handler."""
    os._exit(code)


def segfault() -> None:
    """Crash the interpreter with a segmentation fault."""
    import ctypes

    ctypes.string_at(0)


def sleep_for(seconds: float) -> float:
    """Sleep `seconds` without reporting; returns them."""
    time.sleep(seconds)
    return seconds


def ignore_timeout(seconds: float) -> float:
    """Ignore RQ's SIGALRM job timeout, then sleep `seconds`: only a kill from outside ends it."""
    import signal

    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    time.sleep(seconds)
    return seconds


def record(key: str, name: str, failures: int = 0) -> str:
    """Append `name` to the list `key` (the order jobs ran in); raise on the first `failures` attempts."""
    from rq import get_current_job

    connection = get_current_job().connection
    connection.rpush(key, name)
    if connection.incr(f"{key}:attempts:{name}") <= failures:
        raise RuntimeError(f"{name} failed")
    return name


def ask_retry(key: str, times: int, max_retries: int):
    """Return `rq.Retry(max=max_retries)` for the first `times` attempts (counted under `key`), then 1."""
    from rq import Retry, get_current_job

    attempt = get_current_job().connection.incr(key)
    return Retry(max=max_retries) if attempt <= times else 1


def save_meta(values: dict) -> str:
    """Add `values` to the job's meta and save it (RQ's own way, not `report()`)."""
    from rq import get_current_job

    job = get_current_job()
    job.meta.update(values)
    job.save_meta()
    return "saved"
