"""Results JSON cannot hold become text, the same on /status and on the event stream; never a 500."""

import json

import pytest
import requests
from rq import Queue, SimpleWorker

from tests.fixture_jobs import ODD_RESULTS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def finished(server) -> dict[str, str]:
    """One finished job per odd result, enqueued with RQ's own API and run by a real (in-process) worker."""
    queue = Queue("odd", connection=server.client)
    ids = {kind: queue.enqueue("tests.fixture_jobs.odd_result", kind).id for kind in ODD_RESULTS}
    SimpleWorker([queue], connection=server.client).work(burst=True)
    return ids


@pytest.mark.parametrize("kind", sorted(ODD_RESULTS))
def test_status_and_stream_say_the_same_text(webs, finished, kind):
    (web,) = webs
    status = requests.get(f"{web}/status/{finished[kind]}", timeout=5)
    assert status.status_code == 200 and status.headers["Content-Type"] == "application/json"
    body = status.json()  # strict JSON: no NaN or Infinity tokens
    assert body["state"] == "SUCCESS" and isinstance(json.dumps(body["result"], allow_nan=False), str)
    with requests.get(f"{web}/status/{finished[kind]}/events", stream=True, timeout=5) as stream:
        data = next(line for line in stream.iter_lines(decode_unicode=True) if line.startswith("data:"))
    assert json.loads(data.removeprefix("data: ")) == body


def test_the_text_of_a_set_is_its_python_text(webs, finished):
    (web,) = webs
    assert requests.get(f"{web}/status/{finished['set']}", timeout=5).json()["result"] == "{1, 3}"
