"""The warm-horse worker class that tests and the bench load with `rq worker -w`, from one place.

Until the product's own worker class composes `jobs.horse.WarmHorse`, this module does it:
`WarmWorker` is RQ's forking `Worker` with the warm horse first in its bases.
"""

from rq import Worker

from jobs.horse import WarmHorse

# The class `rq worker -w` loads wherever tests and the bench want the warm horse.
WARM_WORKER_CLASS = "support.workers.WarmWorker"


class WarmWorker(WarmHorse, Worker):
    """RQ's `Worker` with a warm work horse."""
