"""Imported at start by every Python process of an RQ suite run (`run.py` puts it on PYTHONPATH).

It does nothing unless `run.py` set `RQ_SUITE_WORKER`: then RQ's worker is swapped for ours (in an
`rqworker` subprocess too, whose CLI resolves `rq.Worker` at run time), and once the plugin has
claimed a database, RQ's tests in this process use that one (a job that enqueues from inside the
worker calls `find_empty_redis_database`, which would otherwise write into an unclaimed database).
"""

import os

if os.environ.get("RQ_SUITE_WORKER"):
    from redis import Redis
    from rq_suite.swap import DB_ENV, pin_database, runs_our_worker, use_our_worker

    if runs_our_worker():
        use_our_worker()
    if os.environ.get(DB_ENV):
        pin_database(lambda: Redis(db=int(os.environ[DB_ENV])))
