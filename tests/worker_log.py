"""RQ's log lines of an in-process worker run as comparable text, with what varies between runs masked.

`captured_to(path)` sends every record of the `rq` loggers (the worker's, its work horses', the
scheduler's, and our callbacks' end lines, logged under `rq.worker`) to a file; a forked work horse
inherits the handler and appends to the same file. `read_log(path)` gives the records with pids,
durations, moments and execution ids masked, sorted: how a horse's records and its parent's
interleave depends on timing (ours logs a job handed to the horse early as it accounts for it,
which may be after the horse has run it), so the order is not compared, only what is logged.
"""

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# A record's first line starts with its level (`captured_to`'s format); a traceback follows it.
RECORD_START = re.compile(r"^(?=(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) )", re.MULTILINE)
# Records about the connection to Redis (lost, retried): the environment's doing, not the worker's
# (seen on the shared local Redis: a worker's connection closed by the server mid-run). Both
# workers log it the same way; the Redis state left must still match.
ENVIRONMENT = re.compile(r"could not connect to Redis instance")
# Pattern, placeholder; applied in order.
MASKS = [
    (re.compile(r"\b(PID|pid|retpid=) ?\d+", re.IGNORECASE), r"\1 <pid>"),
    (re.compile(r"\d+:\d\d:\d\d(?:\.\d+)?s?\b"), "<duration>"),  # RQ's "in 0:00:00.000333s"
    (re.compile(r"\b\d+\.\d+ s\b"), "<duration>"),  # our callbacks' end line: "in 0.002 s"
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<execution-id>"),
]


@contextmanager
def captured_to(path: Path, level: int = logging.INFO) -> Iterator[None]:
    """Append the `rq` loggers' records at `level` and above to `path` while inside."""
    handler = logging.FileHandler(path)  # O_APPEND: a horse's lines and the parent's interleave whole
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("rq")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def read_log(path: Path) -> str:
    """The captured records, masked and sorted; empty when nothing was logged."""
    if not path.exists():
        return ""
    text = path.read_text(errors="backslashreplace")
    for pattern, placeholder in MASKS:
        text = pattern.sub(placeholder, text)
    records = [record if record.endswith("\n") else record + "\n" for record in RECORD_START.split(text)]
    kept = [record for record in records if record.strip() and not ENVIRONMENT.search(record)]
    return "".join(sorted(kept))
