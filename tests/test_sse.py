import json

import pytest

from web import sse


def parse(frame: str) -> list[tuple[str, str]]:
    """Split a frame into (field, value) pairs the way EventSource does."""
    assert frame.endswith("\n\n")
    pairs = []
    for line in frame[:-2].split("\n"):
        field, _, value = line.partition(":")
        pairs.append((field, value.removeprefix(" ")))
    return pairs


def test_payload_becomes_one_compact_json_data_line():
    frame = sse.format_event({"id": "j1", "state": "PROGRESS", "current": 3})
    assert frame == 'data: {"id":"j1","state":"PROGRESS","current":3}\n\n'
    assert json.loads(parse(frame)[0][1]) == {"id": "j1", "state": "PROGRESS", "current": 3}


def test_line_breaks_become_several_data_lines():
    frame = sse.format_event("one\ntwo\r\nthree\rfour")
    assert parse(frame) == [("data", "one"), ("data", "two"), ("data", "three"), ("data", "four")]


def test_json_strings_with_newlines_stay_on_one_line():
    frame = sse.format_event({"status": "line one\nline two"})
    assert frame.count("\n") == 2
    assert json.loads(parse(frame)[0][1]) == {"status": "line one\nline two"}


def test_fields_come_before_data():
    frame = sse.format_event("x", event="progress", event_id="7", retry_ms=1500)
    assert parse(frame) == [("event", "progress"), ("id", "7"), ("retry", "1500"), ("data", "x")]


@pytest.mark.parametrize("field", ["event", "event_id"])
def test_a_line_break_cannot_inject_a_field(field):
    frame = sse.format_event("x", **{field: "a\ndata: injected"})
    assert [name for name, _ in parse(frame)].count("data") == 1


def test_empty_string_is_one_empty_data_line():
    assert sse.format_event("") == "data: \n\n"


def test_heartbeat_is_a_comment_ending_a_frame():
    beat = sse.heartbeat()
    assert beat.startswith(":") and beat.endswith("\n\n")
    assert sse.comment("a\nb") == ": a b\n\n"


def test_values_json_cannot_encode_fall_back_to_text():
    from datetime import date

    assert sse.format_event({"on": date(2026, 1, 2)}) == 'data: {"on":"2026-01-02"}\n\n'


def test_a_retry_field_can_be_added_to_any_frame():
    frame = sse.with_retry(sse.format_event("x", event="log", event_id="1-0"), 1000)
    assert frame == "retry: 1000\nevent: log\nid: 1-0\ndata: x\n\n"
