"""Settings module for `rq worker -c jobs.worker.settings`: where Redis is, and the job modules preloaded.

RQ reads this module's UPPERCASE names: `REDIS_URL`, or `SENTINEL` (RQ's dict for a
Sentinel-managed primary), both built by `jobs.connection` from the same environment variables
the web reads (README, "Configuration"). Importing `jobs.preload` loads the job modules once in
the worker, so forked work horses inherit them. Bad settings, or sentinels that do not answer,
stop the worker at start with a sentence naming the variable.
"""

import os

import jobs.preload  # noqa: F401  (loads the job modules in the worker parent)
from jobs.connection import RedisSettingsError, check_sentinels, rq_settings, target_from

try:
    _target = target_from(os.environ)
    check_sentinels(_target, timeout_s=5.0)
except RedisSettingsError as exc:
    raise SystemExit(f"rq worker: {exc}") from None

_settings = rq_settings(_target)
REDIS_URL = _settings["REDIS_URL"]
SENTINEL = _settings["SENTINEL"]
