"""Progress for job authors: one call to save and publish how far a job has come.

`report()` is the only way into `job.meta["progress"]` (stored by `jobs.throttle`, which it
calls, and by nothing else). Each saved update is stored there (so `/status/<id>`
reads it from Redis) and published on the job's channel (so open event streams get it at
once). Saves are throttled (`jobs.throttle`); a deferred update is saved by the next call, or by
the lifecycle callbacks (`jobs.callbacks`) when the job ends. Each save also checks the stop
request of `jobs.control`, and writes the step's log line (`report(..., log=True)`, see
`jobs.joblog`), at no extra round trip.
"""

import logging
import time
from collections.abc import Callable

from rq import get_current_job

from jobs import joblog, throttle

# Jobs enqueued before the callbacks moved to jobs.callbacks name them by these dotted paths
# (`jobs.progress.on_success`...) in Redis: scheduled for up to a day, waiting to retry, or
# requeued from the dashboard. rq would fail such a job when its callback cannot be imported.
from jobs.callbacks import on_failure, on_stopped, on_success  # noqa: F401
from jobs.control import StopRequested

logger = logging.getLogger(__name__)


def resume_point() -> int:
    """Steps the current job had saved as done before this attempt (0 outside a job or at first).

    A retried job can skip work an earlier attempt reported as done.
    """
    job = get_current_job()
    if job is None:
        return 0
    return int((job.meta.get("progress") or {}).get("current", 0))


def report(
    current: int | float,
    total: int | float,
    status: str = "",
    *,
    log: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Record the current job's progress; do nothing outside a job.

    Saves are coalesced to at most `jobs.throttle.max_saves_per_s()`; a skipped update is
    kept and saved by the next call, or when the job ends (`jobs.throttle.flush`). The update that reaches
    `total` is always saved at once. After each save the stop request is checked, so a
    job learns it was asked to stop within one save interval, at no extra cost per step.

    Args:
        current: steps done so far.
        total: steps in all.
        status: a short sentence for people watching the bar.
        log: also write "step <current> of <total>: <status>" to the job's log; a deferred
            update's line is kept and written with the next write, never dropped.
        clock: seconds from a monotonic clock; tests pass their own.

    Returns:
        True when this update was saved now, False when it was deferred or there is no job.

    Raises:
        StopRequested: the job was asked to stop (`jobs.control.request_stop`); let it propagate.
    """
    job = get_current_job()
    if job is None:
        return False
    progress = {"current": current, "total": total, "status": status}
    lines = [joblog.make_line(f"step {current} of {total}: {status}")] if log else []
    stop_requested = throttle.offer(job, progress, lines, clock())
    if stop_requested:
        logger.info("job %s stops on request after step %s of %s", job.id, current, total)
        raise StopRequested()
    return stop_requested is not None
