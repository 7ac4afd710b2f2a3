"""Job functions run by the stock `rq worker`; no Flask, no app context.

`long_task` is re-exported so that the dotted path `jobs.long_task` works with RQ's own
`Queue.enqueue`, as the tutorial's clients expect.
"""

from jobs.demo import long_task

__all__ = ["long_task"]
