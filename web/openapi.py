"""The OpenAPI 3.1 document, generated from the routes and the parameter declarations.

Each JSON route carries its own operation (`@doc(...)` beside `@bp.get`/`@bp.post`), so it
documents itself in whichever blueprint it lives. `document()` walks the app's URL map with
apispec's Flask plugin and adds the shared components below: answers, headers, parameters, the
status payload, and every registered job's parameters from its pydantic model (a newly registered
job appears with no change here). Routes without `@doc` (pages, static files, the dashboard) are
left out; tests/test_openapi.py fails on a JSON route left out and on any undocumented answer.

The bearer scheme (API tokens, web/tokens.py) is a component; a route that takes a token says
`@doc({..., 401: "Unauthorized", 403: "Forbidden"}, security=OPTIONAL_BEARER)`. Every route that
changes state may also answer 403 (another site) and 415 (a body that is not JSON): web/guards.py.
"""

from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

from apispec import APISpec
from apispec_webframeworks.flask import FlaskPlugin
from flask import Blueprint, Flask, current_app
from pydantic import Field, create_model

from jobs.contract import FAILURE, GROUP_JOB_FIELDS, PENDING, PROGRESS, SUCCESS
from jobs.joblog import LEVELS
from jobs.params import Params, json_schema
from jobs.registry import StartRequest, catalog
from web.config import queue_names

JSON = "application/json"
# A log line's id: "<milliseconds>-<sequence>", as Redis Streams number entries.
LOG_ID_PATTERN = "^[0-9]{1,20}-[0-9]{1,20}$"
_OPERATION = "openapi_operation"
_COMPONENTS = "#/components/schemas/{model}"
DESCRIPTION = (
    'Start long jobs on RQ and follow their progress. Every error is `{"error": {"code", "message"}}`.'
)

bp = Blueprint("openapi", __name__)

# A route callable without a token or with one (what it may do then depends on the token's scopes).
OPTIONAL_BEARER: list[dict[str, list[str]]] = [{}, {"bearer": []}]


def doc(
    responses: dict[int, str | dict[str, Any]],
    *,
    body: Any = None,
    body_required: bool = True,
    parameters: tuple[str, ...] = (),
    **operation: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Attach a route's OpenAPI operation to its view; the summary is the view's docstring.

    Args:
        responses: status code -> a response component's name, or a response object whose
            schemas may be component names.
        body: the JSON request body: a component name or a pydantic type.
        body_required: whether a request without a body is valid.
        parameters: names of parameter components (path parameters are added from the rule).
        operation: any other Operation Object field (`description`, `security`, ...), as is.
    """

    def attach(view: Callable[..., Any]) -> Callable[..., Any]:
        setattr(view, _OPERATION, dict(operation, responses=responses))
        if parameters:
            getattr(view, _OPERATION)["parameters"] = list(parameters)
        if body is not None:
            getattr(view, _OPERATION)["requestBody"] = {"required": body_required, "body": body}
        return view

    return attach


def _json(schema: str | dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def answer(description: str, schema: str | dict[str, Any]) -> dict[str, Any]:
    """A JSON answer for `@doc`: its description and its schema (a component name or a schema)."""
    return {"description": description, "content": _json(schema)}


@bp.get("/api/openapi.json")
@doc({200: answer("OpenAPI 3.1", {"type": "object"})})
def openapi_json():
    """This document."""
    return document(current_app)


def document(app: Flask) -> dict[str, Any]:
    """The whole OpenAPI document of `app`: every route that carries `@doc`."""
    spec = APISpec(
        title="rq-progress",
        version="1.0.0",
        openapi_version="3.1.0",
        plugins=[FlaskPlugin()],
        info={"description": DESCRIPTION},
    )
    _components(spec, queue_names(app.config["QUEUES"]))
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        view = app.view_functions[rule.endpoint]
        if not hasattr(view, _OPERATION):
            continue
        operation = _operation(spec, view)
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        spec.path(
            view=view,
            app=app,
            operations={method.lower(): operation for method in methods},
            parameters=sorted(rule.arguments),
        )
    return spec.to_dict()


def _operation(spec: APISpec, view: Callable[..., Any]) -> dict[str, Any]:
    operation = dict(getattr(view, _OPERATION))
    operation.setdefault("summary", (view.__doc__ or "").strip().splitlines()[0])
    if "requestBody" in operation:
        body = operation["requestBody"]
        schema = body["body"] if isinstance(body["body"], str) else _schema_of(spec, body["body"])
        operation["requestBody"] = {"required": body["required"], "content": _json(schema)}
    return operation


def _schema_of(spec: APISpec, declared: Any) -> dict[str, Any]:
    """A pydantic type's JSON Schema, the models it uses registered as components."""
    schema = json_schema(declared, ref_template=_COMPONENTS)
    for name, model_schema in schema.pop("$defs", {}).items():
        if name not in spec.components.schemas:
            spec.components.schema(name, model_schema)
    return schema


def _components(spec: APISpec, queues: list[str]) -> None:
    components = spec.components
    components.security_scheme(
        "bearer",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "an API token from `flask --app web tokens create NAME --scope ...`; "
            "scopes: start:<job name>, start:*, cancel:any",
        },
    )
    components.header("WWWAuthenticate", {"description": "`Bearer realm=...`", "schema": {"type": "string"}})
    components.header("Location", {"description": "the job's status URL", "schema": {"type": "string"}})
    components.header(
        "RetryAfter", {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}
    )
    components.parameter(
        "job_id",
        "path",
        {
            "description": "the id from the 202 answer that started the job",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"},
        },
    )
    components.parameter(
        "group_id",
        "path",
        {
            "description": "the id from the 202 answer that started the group",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"},
        },
    )
    components.parameter(
        "IdempotencyKey",
        "header",
        {
            "name": "Idempotency-Key",
            "required": False,
            "description": "the same key within a day returns the same job (a double click starts one)",
            "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
        },
    )
    for name, where, field, description in (
        ("LastEventId", "header", "Last-Event-ID", "the id of the last log line the client got"),
        ("LastEventIdQuery", "query", "lastEventId", "the same, as EventSource polyfills send it"),
        ("LogAfter", "query", "after", "a line id: the `next` of the previous answer"),
    ):
        schema = {"type": "string", "pattern": LOG_ID_PATTERN}
        components.parameter(name, where, {"name": field, "description": description, "schema": schema})
    for name, schema in _schemas(queues).items():
        components.schema(name, schema)
    components.schema("StartRequest", _schema_of(spec, _start_request(queues)))
    for name, response in _responses().items():
        components.response(name, response)


def _start_request(queues: list[str]) -> Any:
    """POST /api/jobs's body, one variant per registered job: `StartRequest` with its name and args."""
    variants = [
        create_model(
            f"Start_{job.name}",
            __base__=StartRequest,
            name=(Literal[job.name], ...),
            args=_args_field(job.params),
            queue=(Literal[tuple(queues)] | None, Field(None, description=f"default: {job.queue}")),
        )
        for job in catalog()
    ]
    return Annotated[Union[tuple(variants)], Field(discriminator="name")]  # noqa: UP007


def _args_field(params: type[Params]) -> tuple[Any, Any]:
    """`args` may be left out (or null) only when the job needs no argument."""
    if any(field.is_required() for field in params.model_fields.values()):
        return params, ...
    return params | None, None


def _schemas(queues: list[str]) -> dict[str, Any]:
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
        "GroupStatus": {
            "type": "object",
            "required": ["id", "state", "current", "total", "status", "done", "failed", "jobs"],
            "properties": {
                "id": {"type": "string"},
                "state": {
                    "enum": [PENDING, PROGRESS, SUCCESS, FAILURE],
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
                            "state": {"enum": [PENDING, PROGRESS, SUCCESS, FAILURE]},
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


def _responses() -> dict[str, Any]:
    def error(description: str, **extra: Any) -> dict[str, Any]:
        return {"description": description, "content": _json("Error"), **extra}

    return {
        "Started": {
            "description": "started (or, for a repeated Idempotency-Key, started before)",
            "headers": {"Location": "Location"},
            "content": _json("Accepted"),
        },
        "GroupStarted": {
            "description": "every job of the group started",
            "headers": {"Location": {"description": "the group's status URL", "schema": {"type": "string"}}},
            "content": _json("GroupAccepted"),
        },
        "BadRequest": error("the body or a parameter is wrong; the message names it"),
        "NotFound": error(
            "no such job (unknown, malformed or expired id), or no job registered by that name"
        ),
        "Conflict": error(
            "the Idempotency-Key was used for a different request, or the job has already ended"
        ),
        "TooLarge": error("the body is over 64 KiB"),
        "Unauthorized": error(
            "this needs an API token (none was sent, or it is unknown or revoked)",
            headers={"WWW-Authenticate": "WWWAuthenticate"},
        ),
        "Forbidden": error(
            "the token lacks the scope the message names; or another client started the job; "
            "or the request came from another site"
        ),
        "UnsupportedMediaType": error("a request body must be application/json"),
        "TooManyRequests": error(
            "too many starts from this address without a token (START_RATE_LIMIT a minute)",
            headers={"Retry-After": "RetryAfter"},
        ),
        "Unavailable": error(
            "Redis is unreachable, or the queue is full: nothing was started; retry later",
            headers={"Retry-After": "RetryAfter"},
        ),
    }
