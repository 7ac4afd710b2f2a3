"""The two changes RQ's tests run under: our worker class in place of RQ's, and the database they use.

Shared by `plugin.py` (the pytest processes) and `sitecustomize.py` (every Python process those
start, e.g. `rqworker -b`), so both run the same worker on the same database.
"""

import os
from collections.abc import Callable

from redis import Redis

# Set by `run.py` for the whole run: "ours" swaps the worker, "stock" leaves RQ's.
WORKER_ENV = "RQ_SUITE_WORKER"
# Set by the plugin once its process has claimed a database: the processes it starts use that one.
DB_ENV = "RQ_SUITE_DB"


def runs_our_worker() -> bool:
    """Whether this run replaces RQ's forking worker with ours."""
    return os.environ.get(WORKER_ENV) == "ours"


def use_our_worker() -> None:
    """Make `rq.Worker` and `rq.worker.Worker` our class (RQ's stays in `rq.worker.worker_classes`).

    Our class is imported first: it subclasses `rq.Worker` as it is when imported.
    """
    import rq
    import rq.worker

    from jobs.worker import Worker

    rq.Worker = Worker
    rq.worker.Worker = Worker


def pin_database(connect: Callable[[], Redis]) -> None:
    """Make RQ's tests use the database `connect` opens instead of the first empty one they find.

    Imports RQ's `tests` package, which must come before its test modules import the function.
    """
    import tests

    find_empty = tests.find_empty_redis_database

    def find_pinned(ssl: bool = False) -> Redis:
        return find_empty(ssl=True) if ssl else connect()

    tests.find_empty_redis_database = find_pinned
