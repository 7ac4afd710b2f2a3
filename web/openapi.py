"""The OpenAPI 3.1 document of every JSON route, served at `GET /api/openapi.json`.

Built from the job registry, so a newly registered job appears here with its parameters.
A route added to the app gets its entry in `_paths()`; the fuzz test (tests/test_openapi.py)
fails on any answer the document does not describe.
"""

from typing import Any

from flask import Blueprint, current_app

from jobs.contract import FAILURE, PENDING, PROGRESS, SUCCESS
from jobs.joblog import LEVELS
from jobs.registry import MAX_DELAY_S, catalog
from web.config import queue_names

bp = Blueprint("openapi", __name__)

JSON = "application/json"
# A log line's id: "<milliseconds>-<sequence>", as Redis Streams number entries.
LOG_ID_PATTERN = "^[0-9]{1,20}-[0-9]{1,20}$"


@bp.get("/api/openapi.json")
def openapi_json():
    """This API's OpenAPI 3.1 document."""
    return document(queue_names(current_app.config["QUEUES"]))


def document(queues: list[str]) -> dict[str, Any]:
    """The whole OpenAPI document for an app serving these queues."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rq-progress",
            "version": "1.0.0",
            "description": "Start long jobs on RQ and follow their progress. Every error is "
            '`{"error": {"code", "message"}}`.',
        },
        "paths": _paths(),
        "components": {"schemas": _schemas(queues), "responses": _responses(), "headers": _headers()},
    }


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema_name: str) -> dict[str, Any]:
    return {JSON: {"schema": _ref("schemas", schema_name)}}


def _job_id_parameter() -> dict[str, Any]:
    return {
        "name": "job_id",
        "in": "path",
        "required": True,
        "description": "the id from the 202 answer that started the job",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"},
    }


def _log_id_parameter(name: str, where: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": False,
        "description": description,
        "schema": {"type": "string", "pattern": LOG_ID_PATTERN},
    }


def _start_operation(summary: str, body_schema: str, required: bool) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "the same key within a day returns the same job (a double click starts one)",
                "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
            }
        ],
        "requestBody": {"required": required, "content": _json(body_schema)},
        "responses": {
            "202": {
                "description": "started (or, for a repeated Idempotency-Key, started before)",
                "headers": {"Location": _ref("headers", "Location")},
                "content": _json("Accepted"),
            },
            "400": _ref("responses", "BadRequest"),
            "404": _ref("responses", "NotFound"),
            "409": _ref("responses", "Conflict"),
            "413": _ref("responses", "TooLarge"),
            "503": _ref("responses", "Unavailable"),
        },
    }


def _paths() -> dict[str, Any]:
    job_id = _job_id_parameter()
    return {
        "/longtask": {
            "post": _start_operation(
                "Start the tutorial's demo job (the tutorial's shortcut for POST /api/jobs long_task)",
                "LongTaskArgs",
                required=False,
            )
        },
        "/api/jobs": {
            "get": {
                "summary": "The jobs that can be started, with their parameters as JSON Schema",
                "responses": {"200": {"description": "the catalog", "content": _json("JobCatalog")}},
            },
            "post": _start_operation("Start a registered job", "StartRequest", required=True),
        },
        "/status/{job_id}": {
            "get": {
                "summary": "The job's status payload (the tutorial's contract)",
                "parameters": [job_id],
                "responses": {
                    "200": {"description": "the job's state now", "content": _json("Status")},
                    "404": _ref("responses", "NotFound"),
                    "503": _ref("responses", "Unavailable"),
                },
            }
        },
        "/status/{job_id}/events": {
            "get": {
                "summary": "Server-sent events: the log and status payload now, then every change to the end",
                "description": "Unnamed events carry one Status payload each; `event: log` events carry one "
                "LogLine, with the line's id as the event id; comment lines are heartbeats. The log lines "
                "after `Last-Event-ID` (all of them without it) come first, then the Status payload.",
                "parameters": [
                    job_id,
                    _log_id_parameter("Last-Event-ID", "header", "the last log line's id the client got"),
                    _log_id_parameter("lastEventId", "query", "the same, for EventSource polyfills"),
                ],
                "responses": {
                    "200": {
                        "description": "an event stream of Status payloads and log lines",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": _ref("responses", "BadRequest"),
                    "404": _ref("responses", "NotFound"),
                    "503": _ref("responses", "Unavailable"),
                },
            }
        },
        "/status/{job_id}/logs": {
            "get": {
                "summary": "The job's log lines after a line id (from the start without one), oldest first",
                "parameters": [
                    job_id,
                    _log_id_parameter("after", "query", "a line id: `next` of the previous answer"),
                ],
                "responses": {
                    "200": {"description": "up to 1,000 lines", "content": _json("LogPage")},
                    "400": _ref("responses", "BadRequest"),
                    "404": _ref("responses", "NotFound"),
                    "503": _ref("responses", "Unavailable"),
                },
            }
        },
        "/status/{job_id}/cancel": {
            "post": {
                "summary": "Stop a queued or running job",
                "parameters": [job_id],
                "responses": {
                    "200": {
                        "description": "canceled while waiting: the job's final payload",
                        "content": _json("Status"),
                    },
                    "202": {
                        "description": "running: its worker was asked to stop; the job's current payload",
                        "content": _json("Status"),
                    },
                    "404": _ref("responses", "NotFound"),
                    "409": _ref("responses", "Conflict"),
                    "503": _ref("responses", "Unavailable"),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Redis reachable, and the live workers per configured queue",
                "responses": {
                    "200": {"description": "healthy", "content": _json("Health")},
                    "503": _ref("responses", "Unavailable"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text: queue depths, jobs by state, workers, job durations",
                "responses": {
                    "200": {"description": "Prometheus exposition format", "content": {"text/plain": {}}},
                    "503": _ref("responses", "Unavailable"),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {"type": "object"}}}}
                },
            }
        },
    }


def _schemas(queues: list[str]) -> dict[str, Any]:
    jobs = catalog()
    long_task = next(spec for spec in jobs if spec.name == "long_task")
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
                "state": {"enum": [PENDING, PROGRESS, SUCCESS, FAILURE]},
                "current": {"type": "number"},
                "total": {"type": "number"},
                "status": {"type": "string", "description": 'e.g. "Pending...", "retrying 2/3 in 10 s"'},
                "updated_at": {"type": ["string", "null"], "format": "date-time"},
                "eta": {
                    "type": "string",
                    "format": "date-time",
                    "description": "PENDING: when it is due to run",
                },
                "remaining_s": {
                    "type": ["number", "null"],
                    "minimum": 0,
                    "description": "PROGRESS: seconds left at the job's smoothed rate; null until there is "
                    "enough evidence, and while stalled",
                },
                "stalled": {
                    "type": "boolean",
                    "description": "PROGRESS: no progress saved for the job's stall_after_s; `status` then "
                    'says for how long ("no progress for 2 min")',
                },
                "result": {"description": "SUCCESS only: the job's return value"},
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
                "lines": {"type": "array", "items": _ref("schemas", "LogLine")},
                "next": {
                    "type": "string",
                    "pattern": LOG_ID_PATTERN,
                    "description": "pass as `after` to get the lines that follow",
                },
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
        "LongTaskArgs": {"oneOf": [long_task.describe()["parameters"], {"type": "null"}]},
        "StartRequest": {"oneOf": [_start_request(spec.describe(), queues) for spec in jobs]},
        "JobCatalog": {
            "type": "object",
            "required": ["jobs", "queues"],
            "properties": {
                "jobs": {"type": "array", "items": _ref("schemas", "JobDescription")},
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
            ],
            "properties": {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "parameters": {"type": "object", "description": "JSON Schema of `args`"},
                "queue": {"type": "string"},
                "timeout_s": {"type": "integer"},
                "result_ttl_s": {"type": "integer"},
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


def _start_request(described: dict[str, Any], queues: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"const": described["name"]},
            "args": described["parameters"],
            "queue": {"enum": queues, "description": f"default: {described['queue']}"},
            "delay_seconds": {"type": "number", "minimum": 0, "maximum": MAX_DELAY_S},
        },
    }


def _responses() -> dict[str, Any]:
    def error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
        response: dict[str, Any] = {"description": description, "content": _json("Error")}
        if headers:
            response["headers"] = headers
        return response

    return {
        "BadRequest": error("the body or a parameter is wrong; the message names it"),
        "NotFound": error(
            "no such job (unknown, malformed or expired id), or no job registered by that name"
        ),
        "Conflict": error(
            "the Idempotency-Key was used for a different request, or the job has already ended"
        ),
        "TooLarge": error("the body is over 64 KiB"),
        "Unavailable": error(
            "Redis is unreachable, or the queue is full: nothing was started; retry later",
            {"Retry-After": _ref("headers", "RetryAfter")},
        ),
    }


def _headers() -> dict[str, Any]:
    return {
        "Location": {"description": "the job's status URL", "schema": {"type": "string"}},
        "RetryAfter": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}},
    }
