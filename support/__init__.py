"""Processes and probes for the tests, the bench and the launcher (`scripts/run.py`); never the product.

`support.servers` starts the embedded Redis, an `rq worker` and the web under gunicorn, and
stops process groups; `support.wait` waits on a condition; `support.sse` reads an event stream;
`support.apps` builds unit-test apps. The product (`jobs`, `web`) never imports this package.
"""
