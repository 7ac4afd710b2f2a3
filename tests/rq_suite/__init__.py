"""RQ's own test suite run against `jobs.worker.Worker` (`make conformance`; see `run.py`).

Nothing here is collected by our own pytest run: `run.py` fetches the pinned RQ's sdist and runs its
`tests/` with `plugin.py` loaded, and `sitecustomize.py` makes the same swap in the `rqworker`
processes those tests start. `expected_failures.txt` lists the few tests allowed to fail, and why.
"""
