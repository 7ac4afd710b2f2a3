"""The support package's pure parts: the event-stream parser and waiting on a condition."""

import pytest

from support.sse import Event, EventParser, read_json_events
from support.wait import wait_until


def test_parser_keeps_data_event_and_id_and_skips_comments():
    stream = 'retry: 1000\nid: 7\nevent: progress\ndata: {"a":\ndata: 1}\n\n: heartbeat\n\ndata: x\n\n'
    assert EventParser().feed(stream) == [Event('{"a":\n1}', "progress", "7"), Event("x")]


def test_parser_joins_events_split_anywhere_across_chunks_and_line_endings():
    raw = 'data: {"state": "PROGRESS", "status": "caf\u00e9"}\r\n\r\ndata: 2\r\rdata:3\n\n'.encode()
    parser = EventParser()
    events = [event for index in range(len(raw)) for event in parser.feed(raw[index : index + 1])]
    assert [event.data for event in events] == ['{"state": "PROGRESS", "status": "caf\u00e9"}', "2", "3"]
    assert events[0].json()["status"] == "caf\u00e9"


def test_read_json_events_stops_at_a_terminal_state_or_the_count():
    frames = ['data: {"state": "PROGRESS"}\n\n', 'data: {"state": "SUCCESS"}\n\n', 'data: {"state": "X"}\n\n']
    assert [event["state"] for event in read_json_events(frames)] == ["PROGRESS", "SUCCESS"]
    assert len(read_json_events(frames, count=1)) == 1


def test_read_json_events_skips_named_events_such_as_log_lines():
    frames = ['event: log\nid: 1-0\ndata: {"message": "hi"}\n\n', 'data: {"state": "SUCCESS"}\n\n']
    assert read_json_events(frames) == [{"state": "SUCCESS"}]


def test_wait_until_returns_the_first_truthy_value_and_names_what_it_waited_for():
    answers = iter([0, None, "ready"])
    assert wait_until(lambda: next(answers), timeout_s=1, interval_s=0) == "ready"
    with pytest.raises(AssertionError, match=r"the web not met within 0.05 s; last value: ZeroDivisionError"):
        wait_until(lambda: 1 / 0, timeout_s=0.05, what="the web")
