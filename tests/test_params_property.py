"""The published schemas and the server agree: every job's parameters, and the start request bodies.

Values drawn from a job's published JSON Schema (hypothesis-jsonschema) must be accepted by the
server, and values from around the schema (valid ones slightly broken, boundary numbers, arbitrary
JSON) must get the same verdict from a JSON Schema validator (jsonschema-rs, ECMA regexes) and from
the server. The same holds over HTTP for the request bodies of the OpenAPI document's start routes.
The only difference allowed is a rule the schema cannot state; each one is listed in
UNSTATED_RULES with the words its schema's description must carry, and checked, never filtered.
"""

import json
from typing import Any

import fakeredis
import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from jobs.params import BadParams
from jobs.registry import DEMO_MAX_S, catalog, demo_duration_s
from support.apps import UNIT_SETTINGS
from web import create_app, tokens
from web.openapi_doc import JSON


def _demo_too_long(args: dict[str, Any], defaults: dict[str, Any]) -> bool:
    return demo_duration_s(**{**defaults, **args}) > DEMO_MAX_S


# job name -> (what its schema's description says, what its server message says, the rule).
UNSTATED_RULES = {
    "long_task": ("steps * step_seconds must be at most 600", "600 (10 minutes)", _demo_too_long),
}
JOBS = {spec.name: spec for spec in catalog()}
PROPERTY = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
# Characters regex engines and validators disagree on, or that would smuggle in a header or recipient.
TRICKY = st.sampled_from(
    [
        "\n",
        "\r",
        " ",
        "\t",
        "@",
        ",",
        ";",
        "<",
        '"',
        "\x00",
        "\x1c",
        "\x85",
        "\xa0",
        "\u2028",
        "\ufeff",
        "é",
        "😀",
    ]
)


def published(name: str) -> dict[str, Any]:
    return JOBS[name].describe()["parameters"]


def server_verdict(name: str, args: Any) -> tuple[bool, str]:
    try:
        JOBS[name].validate(args)
    except BadParams as exc:
        return False, str(exc)
    return True, ""


def breaks_unstated_rule(name: str, args: dict[str, Any]) -> bool:
    if name not in UNSTATED_RULES:
        return False
    defaults = {
        key: prop["default"] for key, prop in published(name)["properties"].items() if "default" in prop
    }
    return UNSTATED_RULES[name][2](args, defaults)


def around(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values inside `schema`, just outside one of its edges (twice as often), and anywhere in JSON."""
    return st.one_of(from_schema(schema), broken(schema), broken(schema), JSON_VALUES)


def broken(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Valid values pushed just past one of `schema`'s edges, or of the wrong JSON type."""
    branches = schema.get("anyOf", [schema])
    kinds = {branch.get("type") for branch in branches}
    wrong_types = [value for value in (None, True, "1", 1, 1.5, [], {}) if _kind(value) not in kinds]
    edges: list[st.SearchStrategy[Any]] = [st.sampled_from(wrong_types)]
    for branch in branches:
        if branch.get("type") in ("integer", "number"):
            low, high = branch.get("minimum", -1e9), branch.get("maximum", 1e9)
            edges.append(
                st.sampled_from([low - 1, low - 0.5, low, float(low), high, float(high), high + 0.5])
            )
        elif branch.get("type") == "string":
            edges.append(_broken_strings(branch))
        elif branch.get("type") == "array":
            edges.append(_broken_lists(branch))
        elif branch.get("type") == "object":
            edges.append(_broken_objects(branch))
    return st.one_of(edges)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    names = {type(None): "null", float: "number", str: "string", list: "array", dict: "object"}
    return names[type(value)]


def _broken_strings(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    valid = from_schema(schema)
    spliced = st.tuples(valid, st.integers(0, 300), TRICKY).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :])
    longest = schema.get("maxLength")
    too_long = valid.map(lambda s: s + (s[-1:] or "x") * (longest + 1 - len(s))) if longest else st.nothing()
    return st.one_of(spliced, too_long, st.just(""))


def _broken_lists(schema: dict[str, Any]) -> st.SearchStrategy[list[Any]]:
    valid = from_schema(schema)
    most = schema.get("maxItems")
    too_many = valid.map(lambda items: items + items[:1] * (most + 1 - len(items))) if most else st.nothing()
    one_broken = st.tuples(valid, st.integers(0, 100), broken(schema.get("items", {}))).map(
        lambda t: t[0][: t[1]] + [t[2]] + t[0][t[1] :]
    )
    return st.one_of(too_many, one_broken, st.just([]))


def _broken_objects(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid object with one field broken, missing or one field too many."""
    properties = schema["properties"]

    def one_field_off(key: str) -> st.SearchStrategy[dict[str, Any]]:
        change = st.one_of(broken(properties[key]), st.just(MISSING))
        return st.tuples(from_schema(schema), change).map(
            lambda pair: {k: v for k, v in {**pair[0], key: pair[1]}.items() if v is not MISSING}
        )

    extra = st.tuples(from_schema(schema), st.text(max_size=8), JSON_VALUES).map(
        lambda t: {t[1]: t[2], **t[0]}
    )
    return st.one_of([one_field_off(key) for key in sorted(properties)] + [extra])


MISSING = object()


@pytest.mark.parametrize("name", sorted(JOBS))
def test_every_value_the_schema_accepts_the_server_accepts(name):
    @PROPERTY
    @given(from_schema(published(name)))
    def check(args):
        accepted, message = server_verdict(name, args)
        if breaks_unstated_rule(name, args):
            assert not accepted and UNSTATED_RULES[name][1] in message, (args, message)
        else:
            assert accepted, (args, message)

    check()


@pytest.mark.parametrize("name", sorted(JOBS))
def test_schema_and_server_give_the_same_verdict_on_values_around_it(name):
    validator = jsonschema_rs.validator_for(published(name))

    @PROPERTY
    @given(around(published(name)))
    def check(args):
        accepted, message = server_verdict(name, args)
        schema_accepts = validator.is_valid(args)
        if schema_accepts and breaks_unstated_rule(name, args):
            assert not accepted and UNSTATED_RULES[name][1] in message, (args, message)
        else:
            assert accepted == schema_accepts, (args, message)

    check()


@pytest.mark.parametrize("name", sorted(UNSTATED_RULES))
def test_a_rule_the_schema_cannot_state_is_in_its_description(name):
    assert UNSTATED_RULES[name][0] in " ".join(published(name)["description"].split())


def test_the_address_the_old_schema_let_through_is_refused_by_both():
    validator = jsonschema_rs.validator_for(published("send_email"))
    args = {"to": ["a@b c@d"], "subject": "hi"}
    assert not validator.is_valid(args)
    assert server_verdict("send_email", args)[0] is False


# With no room in any queue, a start that passes every check answers 503 and enqueues nothing.
START_VERDICTS = {503: True, 400: False, 404: False}
MAX_BODY_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def full_queues_client():
    redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    settings = {**UNIT_SETTINGS, "REDIS_CONNECTION": redis, "QUEUE_MAX_JOBS": 0, "START_RATE_LIMIT": 0}
    client = create_app(settings).test_client()
    # A token that may start every job, so every body reaches the parameter checks.
    secret = tokens.create(redis, "property", frozenset({tokens.START_ANY}))
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


def inline_refs(schema: Any, root: dict[str, Any]) -> Any:
    """`schema` with every `$ref` into `root` replaced by its target (and OpenAPI's discriminator dropped)."""
    if isinstance(schema, list):
        return [inline_refs(item, root) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return inline_refs(target, root)
    return {key: inline_refs(value, root) for key, value in schema.items() if key != "discriminator"}


def start_bodies(client) -> list[tuple[str, str, dict[str, Any]]]:
    """(path, job name, body schema) for each start route of the document, one per job for /api/jobs."""
    document = client.get("/api/openapi.json").get_json()

    def body_of(path: str) -> dict[str, Any]:
        return inline_refs(
            document["paths"][path]["post"]["requestBody"]["content"][JSON]["schema"], document
        )

    variants = body_of("/api/jobs")["oneOf"]
    return [("/longtask", "long_task", body_of("/longtask"))] + [
        ("/api/jobs", variant["properties"]["name"]["const"], variant) for variant in variants
    ]


def test_the_document_has_a_start_body_for_every_job(full_queues_client):
    assert sorted(
        name for path, name, _ in start_bodies(full_queues_client) if path == "/api/jobs"
    ) == sorted(JOBS)


@pytest.mark.parametrize("index", range(1 + len(JOBS)))
def test_start_routes_answer_as_their_documented_body_schema_says(full_queues_client, index):
    path, name, schema = start_bodies(full_queues_client)[index]
    validator = jsonschema_rs.validator_for(schema)

    @settings(PROPERTY, max_examples=60)
    @given(around(schema))
    def check(body):
        data = json.dumps(body).encode()
        response = full_queues_client.post(path, data=data, content_type=JSON)
        args = (body.get("args") if path == "/api/jobs" else body) if isinstance(body, dict) else None
        if len(data) > MAX_BODY_BYTES:
            assert response.status_code == 413
        elif validator.is_valid(body) and breaks_unstated_rule(name, args or {}):
            assert response.status_code == 400, response.get_json()
            assert UNSTATED_RULES[name][1] in response.get_json()["error"]["message"]
        else:
            assert START_VERDICTS[response.status_code] == validator.is_valid(body), (
                body,
                response.get_json(),
            )

    check()
