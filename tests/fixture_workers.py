"""Worker classes used only by tests, loaded by the real CLI with `rq worker -w tests.fixture_workers...`."""

import os
import signal

from jobs.worker import Worker


class DiesAfterPop(Worker):
    """The Procfile's worker class that SIGKILLs itself right after taking a job, before registering it."""

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        """Take a job as the real class does, then die at once."""
        result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        if result is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
