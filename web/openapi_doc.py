"""How a JSON route documents itself: `@doc(...)` beside `@bp.get`/`@bp.post`, and `answer()`.

Each route carries its own OpenAPI operation, so it documents itself in whichever blueprint it
lives; `web/openapi.py` collects them. Answers, parameters and schemas are named by their
component names (`web/openapi_components.py`, `web/openapi_schemas.py`).

The bearer scheme (API tokens, web/tokens.py) is a component; a route that takes a token says
`@doc({..., 401: "Unauthorized", 403: "Forbidden"}, security=OPTIONAL_BEARER)`. Every route that
changes state may also answer 403 (another site) and 415 (a body that is not JSON): web/guards.py.
"""

from collections.abc import Callable
from typing import Any

JSON = "application/json"
# The attribute of a view function that holds its operation.
OPERATION = "openapi_operation"

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
        setattr(view, OPERATION, dict(operation, responses=responses))
        if parameters:
            getattr(view, OPERATION)["parameters"] = list(parameters)
        if body is not None:
            getattr(view, OPERATION)["requestBody"] = {"required": body_required, "body": body}
        return view

    return attach


def json_content(schema: str | dict[str, Any]) -> dict[str, Any]:
    """A JSON Media Type map: `schema` is a component name or a schema."""
    return {JSON: {"schema": schema}}


def answer(description: str, schema: str | dict[str, Any]) -> dict[str, Any]:
    """A JSON answer for `@doc`: its description and its schema (a component name or a schema)."""
    return {"description": description, "content": json_content(schema)}


def event_stream(description: str, payload: str, *, log: str | None = None) -> dict[str, Any]:
    """A `text/event-stream` answer for `@doc`, whose schema describes one event (as OpenAPI 3.1
    readers such as schemathesis apply it): unnamed events carry a `payload` (a component name) as
    JSON in `data`; with `log`, `event: log` events carry that component, with the line's id."""

    def carrying(schema: str) -> dict[str, Any]:
        return {"contentMediaType": JSON, "contentSchema": {"$ref": f"#/components/schemas/{schema}"}}

    kinds = [{"properties": {"event": {"const": "message"}, "data": carrying(payload)}}]
    if log is not None:
        kinds.append(
            {"required": ["event", "id"], "properties": {"event": {"const": "log"}, "data": carrying(log)}}
        )
    event = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {"type": "string"},
            "event": {"type": "string"},
            "id": {"type": "string"},
            "retry": {"type": "integer", "description": "milliseconds before a reconnect"},
        },
        "oneOf": kinds,
    }
    return {"description": description, "content": {"text/event-stream": {"schema": event}}}
