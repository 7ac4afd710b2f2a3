import itertools
import json
import queue as queue_module
import threading
import time

import pytest
from rq.job import JobStatus

from jobs import joblog
from jobs.channel import publish, publish_line_moved
from jobs.contract import to_payload
from jobs.keys import log_channel_for, log_key
from support.apps import UNIT_SETTINGS, unreachable_redis_app
from support.sse import Event, read_events, read_json_events
from support.wait import wait_until
from web import create_app, events
from web.events import LINE_MOVED
from web.relay import LogCursor, relay


@pytest.fixture(autouse=True)
def quick_listener(monkeypatch):
    """Wake the listener often, so that closing an app's fan-out takes milliseconds."""
    monkeypatch.setattr(events, "LISTEN_POLL_S", 0.05)


@pytest.fixture
def app(redis):
    """The app on fakeredis with short stream timings (read per request); stops its listener after."""
    settings = {"SSE_HEARTBEAT_S": 0.2, "SSE_MAX_AGE_S": 10.0, "LOST_JOB_CHECK_INTERVAL_S": 0}
    app = create_app({**UNIT_SETTINGS, "BACKGROUND_THREADS": True, "REDIS_CONNECTION": redis, **settings})
    yield app
    app.extensions["events"].close()


@pytest.fixture
def fanout(app):
    return app.extensions["events"]


@pytest.fixture
def open_stream(client):
    """Open event streams with the test client; closes them all at the end."""
    responses = []

    def open_(job_id):
        response = client.get(f"/status/{job_id}/events", buffered=False)
        responses.append(response)
        return response, iter(response.response)

    yield open_
    for response in responses:
        response.close()


def listener_threads():
    return [thread for thread in threading.enumerate() if thread.name == "sse-fanout"]


def progress(job_id, current, total, updated_at):
    meta = {
        "progress": {
            "current": current,
            "total": total,
            "status": f"step {current}",
            "updated_at": updated_at,
        }
    }
    return to_payload(job_id, JobStatus.STARTED, meta)


def test_stream_starts_with_the_snapshot_then_relays_updates_until_the_end(queue, redis, open_stream, fanout):
    job = queue.enqueue("tests.fixture_jobs.answer")
    response, chunks = open_stream(job.id)
    assert response.status_code == 200
    first = next(chunks).decode()
    assert first.startswith("retry: ")
    assert read_json_events([first], 1)[0]["state"] == "PENDING"

    publish(redis, progress(job.id, 1, 3, "2026-01-01T00:00:01.000000Z"))
    publish(redis, to_payload(job.id, JobStatus.FINISHED, {}, result=42))
    relayed = read_json_events(chunks)
    assert [(event["state"], event["current"]) for event in relayed] == [("PROGRESS", 1), ("SUCCESS", 1)]
    assert relayed[-1]["result"] == 42
    assert list(chunks) == []
    assert fanout.streams() == 0


def test_stream_headers_are_set_before_the_body(queue, open_stream):
    response, _ = open_stream(queue.enqueue("tests.fixture_jobs.answer").id)
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"


def test_finished_job_gets_its_final_payload_and_the_stream_ends(queue, run_queued, open_stream, fanout):
    job = queue.enqueue("jobs.long_task", steps=2, step_seconds=0)
    run_queued()
    _, chunks = open_stream(job.id)
    assert [(event["state"], event["result"]) for event in read_json_events(chunks)] == [("SUCCESS", 42)]
    assert list(chunks) == []
    assert fanout.streams() == 0


@pytest.mark.parametrize("job_id", ["never-enqueued", "a:b", "x" * 300])
def test_unknown_job_is_404_json_and_leaves_no_stream(client, fanout, job_id):
    response = client.get(f"/status/{job_id}/events")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == 404
    assert fanout.streams() == 0


def test_silence_sends_a_heartbeat_and_the_changed_snapshot(queue, open_stream, fanout):
    open_stream(queue.enqueue("tests.fixture_jobs.answer").id)
    wait_until(fanout.is_listening)  # so the stream below gets no re-read at the subscription
    job = queue.enqueue("tests.fixture_jobs.answer")
    _, chunks = open_stream(job.id)
    next(chunks)
    # A change that was saved but never published (as when a worker dies) shows up on the re-read.
    job.set_status(JobStatus.STARTED)
    after = [next(chunks).decode(), next(chunks).decode()]
    assert after[0].startswith(": heartbeat")
    assert read_json_events(after[1:])[0]["state"] == "PROGRESS"


def test_an_update_published_right_after_the_snapshot_read_is_not_lost(
    queue, redis, open_stream, monkeypatch
):
    job = queue.enqueue("tests.fixture_jobs.answer")
    real_snapshot = events.snapshot

    def snapshot_then_worker_saves(job_id, connection):
        payload = real_snapshot(job_id, connection)
        publish(redis, progress(job_id, 2, 4, "2026-01-01T00:00:02.000000Z"))
        return payload

    monkeypatch.setattr(events, "snapshot", snapshot_then_worker_saves)
    _, chunks = open_stream(job.id)
    assert [event["state"] for event in read_json_events(chunks, 2)] == ["PENDING", "PROGRESS"]


def test_stream_does_not_wait_for_the_subscription_and_misses_nothing_before_it(
    app, queue, redis, open_stream, fanout, monkeypatch
):
    app.config.update(SSE_HEARTBEAT_S=30.0, SSE_MAX_AGE_S=5.0)
    subscribe = threading.Event()
    real_pubsub = redis.pubsub

    def gated_pubsub():
        pubsub = real_pubsub()
        real_psubscribe = pubsub.psubscribe
        pubsub.psubscribe = lambda *patterns: subscribe.wait(10) and real_psubscribe(*patterns)
        return pubsub

    monkeypatch.setattr(redis, "pubsub", gated_pubsub)
    job = queue.enqueue("tests.fixture_jobs.answer")
    _, chunks = open_stream(job.id)
    assert read_json_events(chunks, 1)[0]["state"] == "PENDING"
    assert not fanout.is_listening()
    job.set_status(JobStatus.STARTED)
    publish(redis, progress(job.id, 1, 2, "2026-01-01T00:00:01.000000Z"))  # nobody subscribed yet
    subscribe.set()
    caught_up = next(chunks).decode()  # a re-read at the subscription, not at the next heartbeat
    assert [event["state"] for event in read_json_events([caught_up])] == ["PROGRESS"], caught_up


def test_an_older_progress_update_never_moves_the_bar_back(app, queue, redis, open_stream):
    # No heartbeat re-read in between: the job hash (the truth) says PENDING, the updates are only published.
    app.config["SSE_HEARTBEAT_S"] = 30.0
    job = queue.enqueue("tests.fixture_jobs.answer")
    _, chunks = open_stream(job.id)
    next(chunks)
    for current in (2, 1, 3):
        publish(redis, progress(job.id, current, 4, f"2026-01-01T00:00:0{current}.000000Z"))
    assert [event["current"] for event in read_json_events(chunks, 2)] == [2, 3]


def test_stream_ends_at_its_maximum_age(app, queue, open_stream, fanout):
    app.config["SSE_MAX_AGE_S"] = 0.3
    _, chunks = open_stream(queue.enqueue("tests.fixture_jobs.answer").id)
    started = time.monotonic()
    assert [event["state"] for event in read_json_events(chunks)] == ["PENDING"]
    assert 0.3 <= time.monotonic() - started < 3
    assert fanout.streams() == 0


def test_streams_share_one_subscription_and_thread(queue, redis, open_stream, fanout):
    jobs = [queue.enqueue("tests.fixture_jobs.answer") for _ in range(5)]
    streams = [open_stream(job.id)[1] for job in jobs for _ in range(4)]
    for chunks in streams:
        read_json_events(chunks, 1)
    assert fanout.streams() == 20
    # One subscription, to the payload, log, line and new-row channels' patterns.
    assert redis.execute_command("PUBSUB", "NUMPAT") == len(events.PATTERNS) == 4
    assert len(listener_threads()) == 1

    publish(redis, progress(jobs[0].id, 1, 2, "2026-01-01T00:00:01.000000Z"))
    for chunks in streams[:4]:
        assert read_json_events(chunks, 1)[0]["current"] == 1


def test_closing_a_stream_unregisters_it(queue, client, fanout):
    response = client.get(f"/status/{queue.enqueue('tests.fixture_jobs.answer').id}/events", buffered=False)
    next(iter(response.response))
    assert fanout.streams() == 1
    response.close()
    assert fanout.streams() == 0


def test_listener_resubscribes_after_losing_redis_and_streams_catch_up(
    app, redis, queue, open_stream, fanout, monkeypatch
):
    app.config["SSE_HEARTBEAT_S"] = 5.0
    monkeypatch.setattr(events, "RECONNECT_DELAY_S", 0.3)
    job = queue.enqueue("tests.fixture_jobs.answer")
    _, chunks = open_stream(job.id)
    next(chunks)
    redis.connection_pool.connection_kwargs["server"].connected = False
    wait_until(lambda: not fanout.is_listening(), timeout_s=5)
    redis.connection_pool.connection_kwargs["server"].connected = True
    job.set_status(JobStatus.STARTED)  # saved while the listener was away: nothing was published
    started = time.monotonic()
    assert read_json_events(chunks, 1)[0]["state"] == "PROGRESS"
    assert time.monotonic() - started < 3, "caught up by the heartbeat, not by the resubscription"


def test_a_stream_rides_out_redis_being_unreachable_and_goes_on(redis, queue, open_stream, fanout):
    job = queue.enqueue("tests.fixture_jobs.answer")
    _, chunks = open_stream(job.id)
    next(chunks)
    server = redis.connection_pool.connection_kwargs["server"]
    server.connected = False  # a failover: the heartbeat's re-read fails
    try:
        assert next(chunks).decode().startswith(": heartbeat")
        assert next(chunks).decode().startswith(": heartbeat")
    finally:
        server.connected = True
    job.set_status(JobStatus.STARTED)
    assert read_json_events(chunks, 1)[0]["state"] == "PROGRESS"


def test_listener_lets_its_connection_go_when_no_stream_is_open(
    queue, redis, open_stream, fanout, monkeypatch
):
    monkeypatch.setattr(events, "LISTENER_LINGER_S", 0.0)
    job = queue.enqueue("tests.fixture_jobs.answer")
    response, chunks = open_stream(job.id)
    next(chunks)
    response.close()
    wait_until(lambda: not fanout.is_listening() and not listener_threads())

    _, chunks = open_stream(job.id)
    next(chunks)
    publish(redis, progress(job.id, 1, 2, "2026-01-01T00:00:01.000000Z"))
    assert read_json_events(chunks, 1)[0]["current"] == 1


def test_a_stream_that_stops_reading_keeps_a_bounded_backlog_and_resyncs(queue, redis, fanout):
    job = queue.enqueue("tests.fixture_jobs.answer")
    inbox = fanout.watch(job.id)
    for current in range(1, events.INBOX_LIMIT + 21):
        publish(redis, progress(job.id, current, 1000, f"2026-01-01T00:00:00.{current:06d}Z"))
    wait_until(lambda: [item[0]["current"] for item in inbox.queue if item != events.RESYNC][-1:] == [120])
    backlog = list(inbox.queue)
    assert len(backlog) <= events.INBOX_LIMIT
    assert backlog[0] == events.RESYNC
    fanout.unwatch(job.id, inbox)


def test_redis_down_is_503_json_and_leaves_no_stream():
    app = unreachable_redis_app(BACKGROUND_THREADS=True, LOST_JOB_CHECK_INTERVAL_S=0)
    try:
        response = app.test_client().get("/status/some-job/events")
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == 503 and response.headers["Retry-After"]
        assert app.extensions["events"].streams() == 0
    finally:
        app.extensions["events"].close()


def test_without_background_threads_a_stream_lives_on_snapshot_re_reads(redis, queue):
    app = create_app({**UNIT_SETTINGS, "REDIS_CONNECTION": redis, "SSE_HEARTBEAT_S": 0.2})
    job = queue.enqueue("tests.fixture_jobs.answer")
    before = len(listener_threads())
    with app.test_client().get(f"/status/{job.id}/events", buffered=False) as response:
        chunks = iter(response.response)
        assert read_json_events(chunks, 1)[0]["state"] == "PENDING"
        job.set_status(JobStatus.STARTED)
        assert read_json_events(chunks, 1)[0]["state"] == "PROGRESS"
    assert len(listener_threads()) == before
    assert app.extensions["events"].streams() == 0


def write_lines(job, *messages: str) -> None:
    """Write lines to a job's log as job code does: stored and published."""
    joblog.write(job, [joblog.make_line(message) for message in messages])


def read_until(chunks, last) -> list[Event]:
    return list(read_events(chunks, last))


def is_payload(event: Event) -> bool:
    return event.event is None


def test_a_new_stream_sends_the_whole_log_then_the_payload(queue, open_stream):
    job = queue.enqueue("tests.fixture_jobs.answer")
    write_lines(job, "one", "two")
    _, chunks = open_stream(job.id)
    first = next(chunks).decode()
    assert first.startswith("retry: ")
    opening = read_until(itertools.chain([first], chunks), is_payload)
    assert [(event.event, event.json().get("message")) for event in opening] == [
        ("log", "one"),
        ("log", "two"),
        (None, None),
    ]
    assert [event.id for event in opening[:2]] == [event.json()["id"] for event in opening[:2]]
    assert opening[-1].json()["state"] == "PENDING"


@pytest.mark.parametrize("via", ["header", "query"])
def test_a_reconnect_gets_the_lines_after_its_last_event_id(queue, client, via):
    job = queue.enqueue("tests.fixture_jobs.answer")
    write_lines(job, "one", "two", "three")
    seen = joblog.lines_after(job.connection, job.id)[0]["id"]
    url, headers = f"/status/{job.id}/events", {}
    if via == "header":
        headers["Last-Event-ID"] = seen
    else:
        url += f"?lastEventId={seen}"
    with client.get(url, headers=headers, buffered=False) as response:
        opening = read_until(iter(response.response), is_payload)
    assert [event.json().get("message") for event in opening] == ["two", "three", None]


@pytest.mark.parametrize("last_event_id", ["nope", "12", "1-2-3"])
def test_a_bad_last_event_id_is_400_json_and_leaves_no_stream(queue, client, fanout, last_event_id):
    job = queue.enqueue("tests.fixture_jobs.answer")
    response = client.get(f"/status/{job.id}/events", headers={"Last-Event-ID": last_event_id})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == 400
    assert fanout.streams() == 0


def test_new_lines_are_pushed_live_once_each(queue, redis, open_stream):
    job = queue.enqueue("tests.fixture_jobs.answer")
    write_lines(job, "before")
    _, chunks = open_stream(job.id)
    assert len(read_until(chunks, is_payload)) == 2
    write_lines(job, "live")
    # The same line again (a resent message) is not sent twice.
    line = joblog.lines_after(redis, job.id)[-1]
    redis.publish(log_channel_for(job.id), json.dumps(line))
    write_lines(job, "later")
    pushed = read_until(chunks, lambda event: event.json().get("message") == "later")
    assert [event.json()["message"] for event in pushed] == ["live", "later"]


def test_a_stream_that_stops_reading_still_gets_every_line_once(queue, redis, open_stream):
    job = queue.enqueue("tests.fixture_jobs.answer")
    _, chunks = open_stream(job.id)
    read_until(chunks, is_payload)
    count = events.INBOX_LIMIT + 50
    for n in range(count):
        write_lines(job, f"line {n}")
    pushed = read_until(
        chunks, lambda event: event.event == "log" and event.json()["message"] == f"line {count - 1}"
    )
    assert [event.json()["message"] for event in pushed if event.event == "log"] == [
        f"line {n}" for n in range(count)
    ]


def test_lines_written_before_the_end_come_before_the_final_payload(queue, redis, open_stream):
    job = queue.enqueue("tests.fixture_jobs.answer")
    _, chunks = open_stream(job.id)
    read_until(chunks, is_payload)
    # Stored but not (yet) relayed, as when the end is seen before the lines' messages.
    redis.xadd(log_key(job.id), joblog.make_line("last words"))
    publish(redis, to_payload(job.id, JobStatus.FINISHED, {}, result=1))
    ending = read_until(chunks, lambda event: is_payload(event) and event.json()["state"] == "SUCCESS")
    assert [(event.event, event.json().get("message")) for event in ending] == [
        ("log", "last words"),
        (None, None),
    ]
    assert list(chunks) == []


def test_a_head_request_leaves_no_stream(queue, client, fanout):
    job = queue.enqueue("tests.fixture_jobs.answer")
    with client.head(f"/status/{job.id}/events") as response:
        assert response.status_code == 200
    assert fanout.streams() == 0


def test_a_waiting_jobs_stream_gets_its_new_place_when_the_line_moves(app, queue, redis, open_stream, fanout):
    app.config["SSE_HEARTBEAT_S"] = 30.0  # no re-read by heartbeat: only the line's message moves it
    ahead = queue.enqueue("tests.fixture_jobs.answer")
    job = queue.enqueue("tests.fixture_jobs.answer")
    _, chunks = open_stream(job.id)
    assert read_json_events(chunks, 1)[0]["position"] == 2
    wait_until(fanout.is_listening, timeout_s=5)
    queue.remove(ahead.id)  # as a worker taking it
    assert publish_line_moved(redis, "default") == 1  # one subscriber: the process's listener
    assert read_json_events(chunks, 1)[0]["position"] == 1


def test_a_running_jobs_stream_no_longer_hears_of_the_line(app, queue, redis, open_stream, fanout):
    job = queue.enqueue("tests.fixture_jobs.answer")
    _, chunks = open_stream(job.id)
    read_json_events(chunks, 1)
    assert fanout._line_inboxes
    publish(redis, progress(job.id, 1, 4, "2026-01-01T00:00:01.000000Z"))
    read_json_events(chunks, 1)
    assert not fanout._line_inboxes


def test_a_line_move_queued_behind_the_payload_that_started_the_job_is_not_reread():
    class NoReads:
        """A fan-out whose snapshot must not be read (the storm 5,000 streams made at a start)."""

        def snapshot(self, job_id):
            raise AssertionError("re-read for a line move of a job that started")

        def watch_line(self, inbox):
            pass

        unwatch_line = watch_line

        def unwatch(self, job_id, inbox):
            pass

        def log_lines(self, job_id, after):
            return []

    started = {
        "id": "j",
        "state": "PROGRESS",
        "current": 1,
        "total": 2,
        "updated_at": "2026-01-01T00:00:01.000000Z",
    }
    ended = {
        "id": "j",
        "state": "SUCCESS",
        "current": 2,
        "total": 2,
        "updated_at": "2026-01-01T00:00:02.000000Z",
    }
    inbox = queue_module.Queue()
    for item in ((started, None), LINE_MOVED, (ended, None)):
        inbox.put(item)
    waiting = {
        "id": "j",
        "state": "PENDING",
        "current": 0,
        "total": 1,
        "updated_at": "2026-01-01T00:00:00.000000Z",
    }
    frames = list(relay(NoReads(), "j", inbox, waiting, LogCursor(), [], 30.0, 60.0))
    assert [json.loads(frame.split("data: ", 1)[1])["state"] for frame in frames[1:]] == [
        "PROGRESS",
        "SUCCESS",
    ]
