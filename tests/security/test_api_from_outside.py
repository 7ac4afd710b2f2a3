"""The published API document and the server agree, seen from outside: schemathesis (`--checks all`)
against the app as the Procfile serves it, both listeners, with a token that may do everything.

One disagreement is expected and named: a rule JSON Schema cannot state, the demo's
steps x step_seconds at most 600 s (`jobs.registry.LongTaskArgs`, whose schema description says
it). A body within every published bound can break it, and the server then refuses a request the
document calls valid (schemathesis's ST202). Any other failure, on either listener, fails the test
(`disagreements` says what else is not one: a case schemathesis mislabels as valid).
"""

import base64
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from jobs.registry import DEMO_MAX_S
from support.servers import start_embedded_redis, start_procfile_web, stop_process
from web import tokens

pytestmark = pytest.mark.integration

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# The one rule the schema cannot state, as the server words its refusal.
UNSTATABLE_RULE = f"steps * step_seconds must be at most {DEMO_MAX_S}"
EXAMPLES = 20
# Streams of real jobs (the stateful phase follows the 202's links) end within a second.
STREAM_SETTINGS = {"SSE_MAX_AGE_S": "1", "SSE_HEARTBEAT_S": "0.5"}


def disagreements(events: list[dict[str, Any]]) -> list[str]:
    """Every failed check and every error in a schemathesis NDJSON event log, as one line each,
    except a refusal of a schema-valid request for the rule the schema cannot state.

    A case schemathesis itself generated with a component in negative mode is not schema-valid,
    whatever it labels the whole case (its coverage phase sends an empty header for want of a
    value matching the pattern, and calls the case positive): its refusal is no disagreement.
    """
    found = []
    for event in events:
        if "NonFatalError" in event:
            found.append(f"error: {event['NonFatalError'].get('info', event['NonFatalError'])}")
        if event.get("ScenarioFinished", {}).get("status") == "error":
            found.append(f"error in {event['ScenarioFinished'].get('recorder', {}).get('label')}")
        recorder = event.get("ScenarioFinished", {}).get("recorder", {})
        for case_id, checks in recorder.get("checks", {}).items():
            for check in checks:
                if check["status"] != "failure":
                    continue
                failure = check["failure_info"]["failure"]
                case = recorder["cases"][case_id]["value"]
                body = _body(recorder.get("interactions", {}).get(case_id))
                if failure["code"] == "ST202" and (UNSTATABLE_RULE in body or _has_negative_part(case)):
                    continue
                request = recorder.get("interactions", {}).get(case_id, {}).get("request", {})
                found.append(
                    f"{failure['operation']}: {failure['code']} {failure['title']}; {request}; {body[:300]}"
                )
    return found


def _has_negative_part(case: dict[str, Any]) -> bool:
    components = case.get("meta", {}).get("components", {})
    return any(part.get("mode") == "negative" for part in components.values())


def _body(interaction: dict[str, Any] | None) -> str:
    content = ((interaction or {}).get("response") or {}).get("content") or {}
    raw = base64.b64decode(content["$base64"]) if "$base64" in content else str(content).encode()
    return raw.decode(errors="replace")


def fuzz(base_url: str, token: str, report: Path) -> tuple[int, str, list[str]]:
    """Run schemathesis against one listener; its exit code, its output, and the disagreements."""
    args = [str(SCHEMATHESIS), "run", f"{base_url}/api/openapi.json", "--checks", "all"]
    args += ["-H", f"Authorization: Bearer {token}", "--generation-deterministic", "-n", str(EXAMPLES)]
    args += ["--report", "ndjson", "--report-ndjson-path", str(report), "--no-color"]
    # In the report's folder: schemathesis keeps a cache of its own (.schemathesis/) where it runs.
    run = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=report.parent)
    events = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    return run.returncode, run.stdout, disagreements(events)


@pytest.fixture(scope="module")
def listeners(tmp_path_factory):
    """The Procfile's web and streams lines on an embedded Redis of their own, and a token."""
    logs = tmp_path_factory.mktemp("outside-logs")
    server = start_embedded_redis()
    url = server.connection_url + "/0"
    processes, web, streams = start_procfile_web(url, logs, STREAM_SETTINGS)
    try:
        token = tokens.create(
            Redis.from_url(url), "outside", frozenset({tokens.START_ANY, tokens.CANCEL_ANY})
        )
        yield {"web": web, "streams": streams}, token, logs
    finally:
        for process in processes:
            stop_process(process)
        server.stop()


def test_the_document_and_both_listeners_agree_but_for_the_named_rule(listeners):
    bases, token, logs = listeners
    with ThreadPoolExecutor(len(bases)) as pool:
        runs = {name: pool.submit(fuzz, base, token, logs / f"{name}.ndjson") for name, base in bases.items()}
    for name, run in runs.items():
        code, output, found = run.result()
        assert found == [], f"{name} listener:\n" + "\n\n".join(found)
        assert code in (0, 1), output  # 1: failures were found (only the named rule's, as checked above)
        assert "Test cases:" in output, output


def _finished(case_id: str, code: str, body: str, modes: dict[str, str]) -> dict[str, Any]:
    """A ScenarioFinished event with one failed check, as schemathesis writes it."""
    content = {"$base64": base64.b64encode(body.encode()).decode()}
    failure = {"code": code, "operation": "POST /longtask", "title": "t"}
    case = {"value": {"meta": {"components": {part: {"mode": mode} for part, mode in modes.items()}}}}
    return {
        "ScenarioFinished": {
            "recorder": {
                "cases": {case_id: case},
                "checks": {case_id: [{"status": "failure", "failure_info": {"failure": failure}}]},
                "interactions": {case_id: {"request": {"uri": case_id}, "response": {"content": content}}},
            }
        }
    }


def test_only_the_named_rule_and_schemathesis_mislabels_are_forgiven():
    rule = '{"error":{"message":"steps * step_seconds must be at most 600 (10 minutes)"}}'
    queue = '{"error":{"message":"jobs[0].queue must be one of high, default, low"}}'
    events = [
        _finished("the-rule", "ST202", rule, {"body": "positive"}),
        _finished(
            "an-empty-header", "ST202", "not a log line id", {"header": "negative", "query": "positive"}
        ),
        _finished("a-queue", "ST202", queue, {"body": "positive"}),
        _finished("a-307", "ST103", "Redirecting...", {"path": "positive"}),
        {"NonFatalError": {"info": "boom"}},
    ]
    found = disagreements(events)
    assert len(found) == 3
    assert "queue must be one of" in found[0] and "ST103" in found[1] and "boom" in found[2]
