"""Waiting on a condition with a deadline: the one way tests, the bench and scripts wait."""

import time
from collections.abc import Callable
from typing import Any


def wait_until(
    predicate: Callable[[], Any], timeout_s: float = 10.0, interval_s: float = 0.02, what: str = "condition"
) -> Any:
    """Re-check `predicate` until it returns something truthy, and return that.

    An exception from the predicate (a server still starting) counts as a falsy answer.

    Raises:
        AssertionError: not met within `timeout_s`; the message names `what` and the last value seen.
    """
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = predicate()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout_s} s; last value: {last!r}")
        time.sleep(interval_s)
