"""The OpenAPI document, and a schema-driven fuzz run of the app against it (in process, fakeredis)."""

import fakeredis
import pytest
import schemathesis
from apispec_webframeworks.flask import FlaskPlugin
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from jobs.registry import CATALOG
from support.apps import UNIT_SETTINGS
from tests.fixture_jobs import flaky_job
from web import create_app
from web.openapi_doc import JSON, doc

fuzz_app = create_app(
    {
        "SECRET_KEY": "fuzz",
        "REDIS_CONNECTION": fakeredis.FakeRedis(server=fakeredis.FakeServer()),
        "BACKGROUND_THREADS": False,
    }
)
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", fuzz_app)
# Pages, static files and the operators' dashboard are not part of the JSON API.
NOT_JSON_BLUEPRINTS = {"static", "pages", "rq_dashboard"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_document_is_openapi_31_and_documents_every_json_route_and_method(client, app):
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    operations = {
        (FlaskPlugin.flaskpath2openapi(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] not in NOT_JSON_BLUEPRINTS
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert operations == documented
    assert {"/status/{job_id}/events", "/status/{job_id}/cancel"} <= set(document["paths"])
    start = document["components"]["schemas"]["StartRequest"]
    assert sorted(start["discriminator"]["mapping"]) == ["long_task", "send_email"]


def test_a_newly_registered_job_appears_with_its_parameters(client, monkeypatch):
    monkeypatch.setitem(CATALOG, "flaky", flaky_job((10, 20)))
    schemas = client.get("/api/openapi.json").get_json()["components"]["schemas"]
    assert schemas["StartRequest"]["discriminator"]["mapping"]["flaky"] == "#/components/schemas/Start_flaky"
    start = schemas["Start_flaky"]
    assert start["properties"]["args"] == {"$ref": "#/components/schemas/FailTimesArgs"}
    assert start["required"] == ["name", "args"]
    assert schemas["FailTimesArgs"]["properties"]["failures"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 5,
    }


def test_job_parameters_in_the_document_are_the_published_catalog_schemas(client):
    schemas = client.get("/api/openapi.json").get_json()["components"]["schemas"]
    for job in client.get("/api/jobs").get_json()["jobs"]:
        assert schemas[job["parameters"]["title"]] == job["parameters"]


def test_fuzz_checks_fail_on_an_answer_the_document_does_not_describe(redis):
    app = create_app({**UNIT_SETTINGS, "REDIS_CONNECTION": redis})

    @app.get("/api/teapot")
    @doc({200: {"description": "never", "content": {JSON: {"schema": {"type": "object"}}}}})
    def teapot():
        """Answer a code the document does not list."""
        return {"tea": True}, 418

    operation = schemathesis.openapi.from_wsgi("/api/openapi.json", app)["/api/teapot"]["GET"]
    with pytest.raises(FailureGroup, match="418"):
        operation.Case().call_and_validate(checks=CHECKS)


# The event stream stays open until its job ends; it is tested where it is served, not fuzzed.
@schema.exclude(path="/status/{job_id}/events").parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_get_documented_answers_and_never_a_5xx(case):
    case.call_and_validate(checks=CHECKS)
