"""Settings module for `rq worker -c jobs.preload`: load the job modules in the worker parent.

RQ's forking worker imports a job's module inside each work horse, after the fork, so every
job paid again for importing `jobs.demo`, `jobs.progress`, `jobs.callbacks` and `jobs.contract`:
measured here, start latency p50 23 -> 13 ms and 35 -> 49 short jobs/s through one worker
(docs/benchmarks.md). Imported here, they load once and every horse inherits them; the price is that
a changed job module needs a worker restart, as any deploy does. RQ reads this module's
UPPERCASE names as worker settings; it defines none, so the command line decides everything.
"""

import jobs  # noqa: F401  (brings in jobs.demo, jobs.progress and jobs.contract)
import jobs.callbacks  # noqa: F401  (run by the work horse at every job's end)
