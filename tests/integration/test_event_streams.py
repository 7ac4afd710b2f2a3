"""Event streams end to end: a real worker's updates pushed over HTTP, and 500 streams on one process."""

import selectors
import socket
import time
from collections.abc import Iterator

import pytest
import requests
from redis import Redis
from rq import Queue
from rq.job import JobStatus

from jobs.callbacks import CALLBACKS
from jobs.channel import publish
from jobs.contract import to_payload
from support.servers import start_embedded_redis, start_web, stop_process
from support.sse import EventParser, read_json_events
from web.events import SNAPSHOT_SLOTS

STREAMS = 500
JOBS = 50


def follow(base: str, events_url: str) -> list[dict]:
    """Every event of a stream until it ends, with a read timeout instead of a sleep."""
    with requests.get(base + events_url, stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        return read_json_events(response.iter_content(chunk_size=None))


def test_stream_shows_a_real_job_rising_to_success(http, web, worker):
    body = http.post(f"{web}/longtask", json={"steps": 5, "step_seconds": 0.1}, timeout=5).json()
    events = follow(web, body["events_url"])
    assert events[-1]["state"] == "SUCCESS" and events[-1]["result"] == 42
    progress = [event["current"] for event in events if event["state"] == "PROGRESS"]
    assert progress == sorted(progress) and progress[-1] == 4 and len(set(progress)) >= 3
    left = [event["remaining_s"] for event in events if event["state"] == "PROGRESS"]
    assert left[0] is None and any(seconds is not None for seconds in left), "time left once evidenced"


def test_stream_ends_in_failure_with_the_jobs_message(web, worker, redis_client):
    job = Queue("default", connection=redis_client).enqueue(
        "tests.fixture_jobs.fail", "the pump seized", **CALLBACKS
    )
    final = follow(web, f"/status/{job.id}/events")[-1]
    assert (final["state"], final["status"]) == ("FAILURE", "the pump seized")


def test_stream_of_an_unknown_job_is_404_json(http, web):
    response = http.get(f"{web}/status/never-enqueued/events", timeout=5)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == 404


class RawStreams:
    """Many event streams on plain sockets, read together with one selector."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.parsers: dict[socket.socket, EventParser] = {}
        self.received: dict[socket.socket, list[dict]] = {}

    def open(self, path: str) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n".encode())
        sock.setblocking(False)
        self.parsers[sock] = EventParser()
        self.received[sock] = []
        self.selector.register(sock, selectors.EVENT_READ)

    def events(self, sock: socket.socket) -> list[dict]:
        return self.received[sock]

    def wait_for_events(self, count: int, timeout_s: float = 30.0) -> None:
        """Read until every stream has delivered `count` events; fail with the laggards at the deadline."""
        deadline = time.monotonic() + timeout_s
        waiting = {sock for sock in self.parsers if len(self.events(sock)) < count}
        while waiting and time.monotonic() < deadline:
            for key, _ in self.selector.select(timeout=0.5):
                chunk = key.fileobj.recv(65536)
                self.received[key.fileobj] += [
                    event.json() for event in self.parsers[key.fileobj].feed(chunk)
                ]
                if not chunk or len(self.events(key.fileobj)) >= count:
                    waiting.discard(key.fileobj)
        assert not waiting, f"{len(waiting)} of {len(self.parsers)} streams lacked event {count}"

    def close(self) -> None:
        for sock in self.parsers:
            self.selector.unregister(sock)
            sock.close()


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory) -> Iterator[tuple[str, Redis]]:
    """A server these tests own (so CLIENT LIST counts only them) and the app on it; no worker."""
    server = start_embedded_redis()
    url = server.connection_url + "/0"
    web, base = start_web(url, tmp_path_factory.mktemp("streams-logs"))
    try:
        yield base, Redis.from_url(url)
    finally:
        stop_process(web)
        server.stop()


def test_one_process_holds_500_streams_on_a_fixed_number_of_redis_connections(own_stack):
    base, redis = own_stack
    port = int(base.rsplit(":", 1)[1])
    queue = Queue("nobody-serves-this", connection=redis)
    jobs = [queue.enqueue("tests.fixture_jobs.answer") for _ in range(JOBS)]
    streams = RawStreams(port)
    try:
        streams.open(f"/status/{jobs[0].id}/events")
        streams.wait_for_events(1)
        before = len(redis.client_list()) - 1  # all but this test's own connection

        for n in range(1, STREAMS):
            streams.open(f"/status/{jobs[n % JOBS].id}/events")
        streams.wait_for_events(1)
        assert len(redis.client_list()) - 1 <= before + SNAPSHOT_SLOTS

        for job in jobs:
            started = {"progress": {"current": 1, "total": 2, "status": "half", "updated_at": "T1"}}
            assert publish(redis, to_payload(job.id, JobStatus.STARTED, started)) == 1, "one subscriber"
        streams.wait_for_events(2)
        for job in jobs:
            publish(redis, to_payload(job.id, JobStatus.FINISHED, {}, result=7))
        streams.wait_for_events(3)
        assert all(streams.events(sock)[-1]["result"] == 7 for sock in streams.parsers)
        assert len(redis.client_list()) - 1 <= before + SNAPSHOT_SLOTS
    finally:
        streams.close()
