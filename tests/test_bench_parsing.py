"""The bench's parsers: wrk's result counts only successes; chunked event streams split into timed frames."""

import json

from bench.sse_clients import frames
from bench.wrk import figures


def wrk_result(statuses: dict[str, int], **errors: int) -> dict:
    return {
        "duration_us": 2_000_000,
        "requests": sum(statuses.values()),
        "statuses": statuses,
        "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0, **errors},
        "latency_us": {"p50": 1500, "p90": 4000, "p99": 12000, "max": 20000, "mean": 2000},
    }


def test_only_the_expected_status_counts_as_throughput():
    found = figures(wrk_result({"202": 300, "503": 700}, status=700), success=202)
    assert (found["ok"], found["ok_per_s"]) == (300, 150.0)
    assert (found["refused"], found["refused_per_s"]) == (700, 350.0)
    assert found["latency_of"] == "202 and refusals mixed"


def test_socket_errors_are_reported_and_latency_is_in_ms():
    found = figures(wrk_result({"200": 1000}, timeout=3, read=1), success=200)
    assert found["socket_errors"] == 4
    assert found["errors"] == {"connect": 0, "read": 1, "write": 0, "timeout": 3}
    assert (found["p50_ms"], found["p90_ms"], found["p99_ms"]) == (1.5, 4.0, 12.0)
    assert found["latency_of"] == "200 only"


def chunk(text: str) -> bytes:
    return f"{len(text.encode()):x}\r\n{text}\r\n".encode()


def test_frames_of_a_chunked_stream_get_the_time_of_the_read_that_completed_them():
    first = {"state": "PENDING"}
    second = {"state": "PROGRESS", "current": 1, "updated_at": "2026-01-01T00:00:00.000001+00:00"}
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    opening = chunk(f"retry: 1000\ndata: {json.dumps(first)}\n\n")
    reads = [
        (1.0, head + opening[:-5]),  # the first frame without its blank line yet
        (2.0, opening[-5:] + chunk(f"data: {json.dumps(second)}\n\n")),
        (3.0, chunk(": heartbeat\n\n") + b"0\r\n\r\n"),
    ]
    assert frames(reads) == [(2.0, first), (2.0, second)]


def test_frames_survive_any_split_of_the_chunked_body():
    payloads = [{"state": "PROGRESS", "current": n} for n in range(3)]
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"".join(chunk(f"data: {json.dumps(p)}\n\n") for p in payloads) + b"0\r\n\r\n"
    stream = head + body
    reads = [(float(at), stream[at : at + 1]) for at in range(len(stream))]
    assert [payload for _, payload in frames(reads)] == payloads
