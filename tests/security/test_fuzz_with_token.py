"""Schemathesis with the bearer scheme: requests carrying a token that may do everything find no 5xx."""

import fakeredis
import schemathesis
from hypothesis import HealthCheck, settings

from tests.test_openapi import CHECKS
from web import create_app, tokens

redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
fuzz_app = create_app({"SECRET_KEY": "fuzz", "REDIS_CONNECTION": redis, "BACKGROUND_THREADS": False})
TOKEN = tokens.create(redis, "fuzz", frozenset({tokens.START_ANY, tokens.CANCEL_ANY}))
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", fuzz_app)


def test_the_document_declares_the_bearer_scheme():
    document = fuzz_app.test_client().get("/api/openapi.json").get_json()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    start = document["paths"]["/api/jobs"]["post"]
    assert start["security"] == [{}, {"bearer": []}]
    assert {"401", "403", "415", "429"} <= set(start["responses"])


@schema.include(method="POST").parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_with_a_token_get_documented_answers_and_never_a_5xx(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)
