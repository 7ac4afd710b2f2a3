"""One encoder for /status, the event stream and pub/sub: odd results become text, never a 500."""

import json

import pytest

from jobs.channel import encode
from tests.fixture_jobs import ODD_RESULTS
from web import sse


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({1, 2}, "{1, 2}"),
        (b"ab", "b'ab'"),
        (1 + 2j, "(1+2j)"),
        (float("nan"), "nan"),
        ({"top": float("-inf")}, {"top": "-inf"}),
        ({(1, 2): "pair", 3: "three"}, {"(1, 2)": "pair", "3": "three"}),
        ([1, "a", None], [1, "a", None]),
    ],
)
def test_odd_values_become_text_and_plain_ones_stay(value, expected):
    assert json.loads(encode(value)) == expected


def test_a_value_that_contains_itself_becomes_text():
    loop: list = [1]
    loop.append(loop)
    assert "[...]" in encode({"result": loop})


@pytest.mark.parametrize("kind", sorted(ODD_RESULTS))
def test_status_and_stream_frame_carry_the_same_json(client, queue, run_queued, app, kind):
    job = queue.enqueue("tests.fixture_jobs.odd_result", kind)
    run_queued()
    response = client.get(f"/status/{job.id}")
    assert response.status_code == 200
    body = json.loads(response.get_data(as_text=True))
    with app.test_request_context():
        frame = sse.format_event(body)
    assert json.loads(frame.split("data: ", 1)[1]) == body


def test_the_page_draws_a_row_with_an_odd_result(client, queue, run_queued):
    from tests.helpers import open_page

    open_page(client)
    with client.session_transaction() as session:
        job = queue.enqueue("tests.fixture_jobs.odd_result", "set")
        session["job_ids"] = [job.id]
    run_queued()
    page = client.get("/")
    assert page.status_code == 200 and "{1, 3}" in page.get_data(as_text=True)


def test_head_on_the_events_route_registers_no_stream(client, app, queue):
    job = queue.enqueue("tests.fixture_jobs.answer")
    for _ in range(5):
        response = client.head(f"/status/{job.id}/events")
        assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert client.head("/status/no-such-job/events").status_code == 404
    assert app.extensions["events"].streams() == 0


def test_a_stream_closed_before_its_first_frame_unregisters(client, app, queue):
    job = queue.enqueue("tests.fixture_jobs.answer")
    response = client.get(f"/status/{job.id}/events", buffered=False)
    assert app.extensions["events"].streams() == 1
    response.close()
    assert app.extensions["events"].streams() == 0
