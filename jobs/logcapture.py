"""The standard `logging` records a job emits while it runs, written to its log (`jobs.joblog`).

`LoggingJob` is RQ's `Job` with one change: `perform()` puts a handler on the root logger for
the job's duration, in the work horse. Workers load it with RQ's own option,
`rq worker --job-class jobs.logcapture.LoggingJob` (the Procfile's worker does); any worker
class that honours `--job-class` works, and a worker without it runs jobs as before, uncaptured.

What is captured: records at INFO and above from any logger but RQ's own (`rq`, `rq.*`), with
their level. When the root logger has no handler (the stock `rq worker` configures only
`rq.worker`), the root level is lowered to INFO for the job and `logging.lastResort` stays in
place, so warnings still reach the worker's stderr as before; a root logger configured by the
operator keeps its level and handlers.
"""

import logging
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from rq.job import Job

from jobs.joblog import LEVELS, make_line, write

CAPTURE_LEVEL = logging.INFO


class LoggingJob(Job):
    """RQ's job, with the `logging` records it emits while it runs written to its log."""

    def perform(self) -> Any:
        """Run the job with its log records captured (see the module docstring)."""
        with capture(self):
            return super().perform()


class JobLogHandler(logging.Handler):
    """Writes each record it gets as a line of one job's log."""

    def __init__(self, job: Job) -> None:
        super().__init__(CAPTURE_LEVEL)
        self.job = job
        # A write that logs (redis-py, at debug) must not write again.
        self._writing = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "rq" or record.name.startswith("rq.") or getattr(self._writing, "on", False):
            return
        self._writing.on = True
        try:
            at = datetime.fromtimestamp(record.created, UTC)
            write(self.job, [make_line(line_text(record), level_of(record), at)])
        except Exception:
            self.handleError(record)
        finally:
            self._writing.on = False


def line_text(record: logging.LogRecord) -> str:
    """The record's message, and its exception's one-line summary (never a traceback)."""
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        summary = traceback.format_exception_only(record.exc_info[1])[-1].strip()
        text = f"{text} ({summary})"
    return text


def level_of(record: logging.LogRecord) -> str:
    """The record's level as a line level (a custom level counts as the standard one below it)."""
    name = record.levelname.lower()
    if name in LEVELS:
        return name
    for level in ("critical", "error", "warning", "info"):
        if record.levelno >= logging.getLevelName(level.upper()):
            return level
    return "debug"


@contextmanager
def capture(job: Job) -> Iterator[JobLogHandler]:
    """Write the `logging` records emitted inside the block to the job's log."""
    root = logging.getLogger()
    handler = JobLogHandler(job)
    unconfigured = not root.handlers
    level = root.level
    added = [handler]
    if unconfigured:
        # Our handler would hide `lastResort`, which prints warnings when no handler exists.
        added.append(logging.lastResort)
        if level > CAPTURE_LEVEL:
            root.setLevel(CAPTURE_LEVEL)
    for added_handler in added:
        if added_handler is not None:
            root.addHandler(added_handler)
    try:
        yield handler
    finally:
        for added_handler in added:
            if added_handler is not None:
                root.removeHandler(added_handler)
        root.setLevel(level)
