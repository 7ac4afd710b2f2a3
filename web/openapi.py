"""The OpenAPI 3.1 document at GET /api/openapi.json, generated from the routes and the models.

`document()` walks the app's URL map with apispec's Flask plugin, takes each route's own
operation (`@doc`, web/openapi_doc.py) and adds the shared components (web/openapi_components.py).
Routes without `@doc` (pages, static files, the dashboard) are left out; tests/test_openapi.py
fails on a JSON route left out and on any undocumented answer.
"""

from collections.abc import Callable
from typing import Any

from apispec import APISpec
from apispec_webframeworks.flask import FlaskPlugin
from flask import Blueprint, Flask, current_app

from web.config import queue_names
from web.openapi_components import add_components, schema_of
from web.openapi_doc import OPERATION, answer, doc, json_content

DESCRIPTION = (
    'Start long jobs on RQ and follow their progress. Every error is `{"error": {"code", "message"}}`.'
)

bp = Blueprint("openapi", __name__)


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
    add_components(spec, queue_names(app.config["QUEUES"]))
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        view = app.view_functions[rule.endpoint]
        if not hasattr(view, OPERATION):
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
    operation = dict(getattr(view, OPERATION))
    operation.setdefault("summary", (view.__doc__ or "").strip().splitlines()[0])
    if "requestBody" in operation:
        body = operation["requestBody"]
        schema = body["body"] if isinstance(body["body"], str) else schema_of(spec, body["body"])
        operation["requestBody"] = {"required": body["required"], "content": json_content(schema)}
    return operation
