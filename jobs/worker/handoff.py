"""What a worker and its warm horse share about the jobs the worker sends it (`jobs.worker.horse`).

Jobs are numbered from 1 per horse. `Handoff` lives in memory the two processes share across the
fork: which job the horse took last, which it runs (or is starting) now, and a lock that makes
the horse's taking a job and the worker's killing it for a stop exclusive. `Handed` is a job the
worker sent while the horse ran another; `TakenJob` is a job as the horse holds it.
"""

import ctypes
import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.sharedctypes import RawValue
from typing import Any

from rq.executions import Execution
from rq.job import Job

# How long the parent waits for the lock it shares with a horse (one that died holding it).
LOCK_WAIT_S = 5.0


class Handoff:
    """What a parent and its horse share about the jobs sent to it, numbered from 1 (memory shared
    across the fork). The lock makes taking a job (horse) and killing the horse for a stop
    (parent) exclusive; re-entrant, as a cold-shutdown signal handler may kill the horse while
    the parent's main thread holds it."""

    def __init__(self) -> None:
        self.lock = multiprocessing.RLock()
        self.taken = RawValue(ctypes.c_ulonglong, 0)  # the last job the horse took
        self.running = RawValue(ctypes.c_ulonglong, 0)  # the job it runs (or starts) now; 0 when idle

    def took(self, number: int) -> bool:
        """Whether the horse took job `number` (it will run it, or ran it if it died since)."""
        return self.taken.value >= number

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lock; a horse that died holding it makes the parent wait `LOCK_WAIT_S` at most."""
        acquired = self.lock.acquire(timeout=LOCK_WAIT_S)
        try:
            yield
        finally:
            if acquired:
                self.lock.release()


@dataclass
class Handed:
    """A job sent to the horse while it runs the one before (`WarmHorse.hand_to_horse`)."""

    job: Job
    queue: Any
    execution: Execution
    number: int
    handed_at: float
    handoff: Handoff

    @property
    def taken(self) -> bool:
        """Whether the horse took it (`Handoff.took`)."""
        return self.handoff.took(self.number)


@dataclass
class TakenJob:
    """A job the horse has taken: its number, its objects, and whether it was started already
    (None: its own start script runs before it)."""

    number: int
    job: Job
    queue: Any
    execution: Execution
    started: bool | None = None
