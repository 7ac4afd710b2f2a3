"""The OpenAPI components routes name in `@doc`: answers, headers, parameters, the bearer scheme.

Also every payload schema (`web/openapi_schemas.py`); `StartRequest`, POST /api/jobs's body
with one variant per registered job, from each job's pydantic model (a newly registered job
appears with no change here); and `GroupRequest`, POST /api/groups's, whose queues are the
configured ones.
"""

from typing import Annotated, Any, Literal, Union

from apispec import APISpec
from pydantic import Field, create_model

from jobs.groups import GroupJob, GroupRequest
from jobs.idempotency import KEY_PATTERN
from jobs.joblog import ID_PATTERN
from jobs.params import Params, json_schema
from jobs.registry import StartRequest, catalog
from jobs.snapshot import JOB_ID_PATTERN
from web.openapi_doc import json_content
from web.openapi_schemas import LOG_ID_PATTERN, anchored, schemas

_COMPONENTS = "#/components/schemas/{model}"
# A line id, or nothing.
# What a first line id looks like (milliseconds, then a sequence number).
FIRST_LINE = "1700000000000-0"
OPTIONAL_LOG_ID = f"^({ID_PATTERN.pattern})?$"


def add_components(spec: APISpec, queues: list[str]) -> None:
    """Register every shared component in `spec`; `queues` are the configured queue names."""
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
    for what in ("job", "group"):  # a group's id has a job id's alphabet (jobs/groups.py)
        schema = {"type": "string", "pattern": anchored(JOB_ID_PATTERN)}
        description = f"the id from the 202 answer that started the {what}"
        components.parameter(f"{what}_id", "path", {"description": description, "schema": schema})
    components.parameter(
        "IdempotencyKey",
        "header",
        {
            "name": "Idempotency-Key",
            "required": False,
            "description": "the same key within a day returns the same job (a double click starts one)",
            "schema": {"type": "string", "pattern": anchored(KEY_PATTERN)},
        },
    )
    # An empty ?lastEventId=, like none, asks for the whole log (EventSource polyfills send it); an
    # empty Last-Event-ID or `after` is refused.
    for name, where, field, pattern, description in (
        (
            "LastEventId",
            "header",
            "Last-Event-ID",
            LOG_ID_PATTERN,
            "the id of the last log line the client got",
        ),
        (
            "LastEventIdQuery",
            "query",
            "lastEventId",
            OPTIONAL_LOG_ID,
            "the same, as EventSource polyfills send it",
        ),
        ("LogAfter", "query", "after", LOG_ID_PATTERN, "a line id: the `next` of the previous answer"),
    ):
        schema = {"type": "string", "pattern": pattern, "examples": [FIRST_LINE]}
        parameter = {"name": field, "description": description, "schema": schema}
        components.parameter(name, where, parameter)
    for name, schema in schemas(queues).items():
        components.schema(name, schema)
    components.schema("StartRequest", schema_of(spec, _start_request(queues)))
    components.schema("GroupRequest", schema_of(spec, _group_request(queues)))
    for name, response in _responses().items():
        components.response(name, response)


def schema_of(spec: APISpec, declared: Any) -> dict[str, Any]:
    """A pydantic type's JSON Schema, the models it uses registered as components."""
    schema = json_schema(declared, ref_template=_COMPONENTS)
    for name, model_schema in schema.pop("$defs", {}).items():
        if name not in spec.components.schemas:
            spec.components.schema(name, model_schema)
    return schema


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


def _group_request(queues: list[str]) -> Any:
    """POST /api/groups's body: `GroupRequest`, each job's `queue` one of the configured queues."""
    job = create_model(
        "GroupJob",
        __base__=GroupJob,
        __doc__=GroupJob.__doc__,
        queue=(Literal[tuple(queues)] | None, GroupJob.model_fields["queue"]),
    )
    jobs = (list[job], GroupRequest.model_fields["jobs"])
    return create_model("GroupRequest", __base__=GroupRequest, __doc__=GroupRequest.__doc__, jobs=jobs)


def _args_field(params: type[Params]) -> tuple[Any, Any]:
    """`args` may be left out (or null) only when the job needs no argument."""
    if any(field.is_required() for field in params.model_fields.values()):
        return params, ...
    return params | None, None


def _responses() -> dict[str, Any]:
    def error(description: str, **extra: Any) -> dict[str, Any]:
        return {"description": description, "content": json_content("Error"), **extra}

    return {
        "Started": {
            "description": "started (or, for a repeated Idempotency-Key, started before)",
            "headers": {"Location": "Location"},
            "content": json_content("Accepted"),
        },
        "GroupStarted": {
            "description": "every job of the group started",
            "headers": {"Location": {"description": "the group's status URL", "schema": {"type": "string"}}},
            "content": json_content("GroupAccepted"),
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
