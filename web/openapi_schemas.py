"""The OpenAPI schemas of the JSON payloads: status, groups, log pages, the catalog, errors.

Job parameters are not here: their schemas come from the pydantic models (`web/openapi_components.py`).
"""

import re
from typing import Any

from jobs.contract import FAILURE, GROUP_JOB_FIELDS, PENDING, PROGRESS, SUCCESS
from jobs.joblog import ID_PATTERN, LEVELS

# Every value of a payload's `state`.
STATES = [PENDING, PROGRESS, SUCCESS, FAILURE]


def anchored(pattern: re.Pattern[str]) -> str:
    """The JSON Schema `pattern` of a regex the server applies with `fullmatch` (JSON Schema's search)."""
    return f"^{pattern.pattern}$"


# A log line's id: "<milliseconds>-<sequence>", as Redis Streams number entries.
LOG_ID_PATTERN = anchored(ID_PATTERN)


def schemas(queues: list[str]) -> dict[str, Any]:
    """Every payload schema by its component name; `Health` lists the configured `queues`."""
    return {
        "Health": {
            "type": "object",
            "required": ["status", "redis", "workers"],
            "properties": {
                "status": {"const": "ok"},
                "redis": {"const": "ok"},
                "workers": {
                    "type": "object",
                    "description": "live workers listening on each configured queue",
                    "properties": {name: {"type": "integer", "minimum": 0} for name in queues},
                    "additionalProperties": False,
                },
            },
        },
        "Status": {
            "type": "object",
            "required": ["id", "state", "current", "total", "status", "updated_at"],
            "properties": {
                "id": {"type": "string"},
                "state": {"enum": STATES},
                "current": {"type": "number"},
                "total": {"type": "number"},
                "status": {"type": "string", "description": 'e.g. "Pending...", "retrying 2/3 in 10 s"'},
                "updated_at": {"type": ["string", "null"], "format": "date-time"},
                "eta": {
                    "type": "string",
                    "format": "date-time",
                    "description": "PENDING: when it is due to run",
                },
                "position": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "description": "PENDING: 1 when it is the next job a free worker of its queue takes; "
                    "counts the jobs ahead in its queue and in the queues its workers serve first; null "
                    "where it cannot be known (scheduled, deferred)",
                },
                "expected_start_s": {
                    "type": ["number", "null"],
                    "minimum": 0,
                    "description": "PENDING: seconds until a worker is expected to take it, from the jobs "
                    "ahead, the workers serving its queue and how long those jobs take; null without "
                    "evidence (no worker, no history)",
                },
                "remaining_s": {
                    "type": ["number", "null"],
                    "minimum": 0,
                    "description": "PROGRESS: seconds left at the job's smoothed rate once it has two "
                    "samples, before that its usual duration minus the time it has run; null without "
                    "evidence, and while stalled",
                },
                "usual_s": {
                    "type": ["number", "null"],
                    "minimum": 0,
                    "description": "PROGRESS: how long a job of this name and size usually takes (the "
                    "median of its latest successful runs, per unit of its size); null without history; "
                    "absent from the update its first save pushes",
                },
                "stalled": {
                    "type": "boolean",
                    "description": "PROGRESS: no progress saved for the job's stall_after_s; `status` then "
                    'says for how long ("no progress for 2 min")',
                },
                "result": {"description": "SUCCESS only: the job's return value"},
            },
        },
        "GroupStatus": {
            "type": "object",
            "required": ["id", "state", "current", "total", "status", "done", "failed", "jobs"],
            "properties": {
                "id": {"type": "string"},
                "state": {
                    "enum": STATES,
                    "description": "PENDING while every job waits; SUCCESS when all succeeded; FAILURE "
                    "when all ended and some failed; PROGRESS otherwise",
                },
                "current": {"type": "number", "description": "the sum of each job's fraction done"},
                "total": {"type": "integer", "description": "the number of jobs"},
                "status": {"type": "string", "description": 'e.g. "2 of 3 jobs done, 1 failed"'},
                "done": {"type": "integer", "description": "jobs that have ended, either way"},
                "failed": {"type": "integer", "description": "jobs that ended in FAILURE"},
                "jobs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": list(GROUP_JOB_FIELDS),
                        "properties": {
                            "id": {"type": "string"},
                            "state": {"enum": STATES},
                            "current": {"type": "number"},
                            "total": {"type": "number"},
                            "status": {"type": "string"},
                        },
                    },
                },
            },
        },
        "GroupAccepted": {
            "type": "object",
            "required": ["id", "status_url", "events_url", "cancel_url", "jobs"],
            "properties": {
                "id": {"type": "string"},
                "status_url": {"type": "string"},
                "events_url": {"type": "string"},
                "cancel_url": {"type": "string"},
                "jobs": {"type": "array", "items": "Accepted", "description": "each job, in the order asked"},
            },
        },
        "LogLine": {
            "type": "object",
            "required": ["id", "at", "level", "message"],
            "properties": {
                "id": {"type": "string", "pattern": LOG_ID_PATTERN},
                "at": {"type": "string", "format": "date-time", "description": "when the job wrote it"},
                "level": {"enum": list(LEVELS)},
                "message": {"type": "string"},
            },
        },
        "LogPage": {
            "type": "object",
            "required": ["lines", "next"],
            "properties": {
                "lines": {"type": "array", "items": "LogLine"},
                "next": {
                    "type": "string",
                    "pattern": LOG_ID_PATTERN,
                    "description": "pass as `after` to get the lines that follow",
                },
            },
        },
        "Accepted": {
            "type": "object",
            "required": ["id", "status_url"],
            "properties": {
                "id": {"type": "string"},
                "status_url": {"type": "string"},
                "events_url": {"type": "string"},
                "logs_url": {"type": "string"},
                "cancel_url": {"type": "string"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
                }
            },
        },
        "JobCatalog": {
            "type": "object",
            "required": ["jobs", "queues"],
            "properties": {
                "jobs": {"type": "array", "items": "JobDescription"},
                "queues": {"type": "array", "items": {"type": "string"}},
            },
        },
        "JobDescription": {
            "type": "object",
            "required": [
                "name",
                "description",
                "parameters",
                "queue",
                "timeout_s",
                "result_ttl_s",
                "retry",
                "stall_after_s",
                "anonymous",
                "scopes",
            ],
            "properties": {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "parameters": {"type": "object", "description": "JSON Schema of `args`"},
                "queue": {"type": "string"},
                "timeout_s": {"type": "integer"},
                "result_ttl_s": {"type": "integer"},
                "anonymous": {
                    "type": "boolean",
                    "description": "whether a caller without a token may start it",
                },
                "scopes": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "a token with any of these scopes may start it",
                },
                "retry": {
                    "type": ["object", "null"],
                    "properties": {"max": {"type": "integer"}, "intervals_s": {"type": "array"}},
                },
                "stall_after_s": {
                    "type": "integer",
                    "description": "seconds a running job may save no progress before it is reported stalled",
                },
            },
        },
    }
