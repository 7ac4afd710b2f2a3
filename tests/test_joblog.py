import json

import pytest
from rq.defaults import DEFAULT_FAILURE_TTL

from jobs import joblog
from jobs.callbacks import CALLBACKS
from jobs.keys import log_channel_for, log_key


def lines_of(client, job_id: str, after: str | None = None) -> dict:
    query = f"?after={after}" if after is not None else ""
    response = client.get(f"/status/{job_id}/logs{query}")
    assert response.status_code == 200
    return response.get_json()


def test_log_outside_a_job_does_nothing():
    assert joblog.log("nobody reads this") is False


def test_an_unknown_level_is_refused_before_anything_is_written():
    with pytest.raises(ValueError, match="level must be one of"):
        joblog.make_line("x", level="loud")


def test_a_jobs_lines_come_back_in_order_with_ids_levels_and_times(client, queue, run_queued):
    job = queue.enqueue("tests.fixture_jobs.write_lines", ["one", "two", "three"], "warning", **CALLBACKS)
    run_queued()
    page = lines_of(client, job.id)
    assert [(line["message"], line["level"]) for line in page["lines"]] == [
        ("one", "warning"),
        ("two", "warning"),
        ("three", "warning"),
    ]
    ids = [joblog.parse_id(line["id"]) for line in page["lines"]]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert all(line["at"].endswith("Z") for line in page["lines"])
    assert page["next"] == page["lines"][-1]["id"]


def test_after_resumes_past_a_line_and_next_stays_put_at_the_end(client, queue, run_queued):
    job = queue.enqueue("tests.fixture_jobs.write_lines", ["a", "b", "c"])
    run_queued()
    first = lines_of(client, job.id)["lines"][0]["id"]
    rest = lines_of(client, job.id, after=first)
    assert [line["message"] for line in rest["lines"]] == ["b", "c"]
    assert lines_of(client, job.id, after=rest["next"]) == {"lines": [], "next": rest["next"]}


def test_a_job_without_lines_has_an_empty_log(client, queue):
    job = queue.enqueue("tests.fixture_jobs.answer")
    assert lines_of(client, job.id) == {"lines": [], "next": joblog.FIRST_ID}


@pytest.mark.parametrize(
    "after",
    ["", "abc", "1", "1-2-3", "-1-0", "1-x", f"{2**64 - 1}-0", "1" * 20 + "-0", "0-" + "9" * 20, "\u0661-0"],
)
def test_a_bad_after_is_400_json(client, queue, after):
    job = queue.enqueue("tests.fixture_jobs.answer")
    response = client.get(f"/status/{job.id}/logs?after={after}")
    assert response.status_code == 400
    assert "log line id" in response.get_json()["error"]["message"]


def test_nothing_follows_the_largest_id(client, queue):
    """The largest id the published pattern allows: 19 digits a part, all below Redis's 2**64."""
    job = queue.enqueue("tests.fixture_jobs.answer")
    largest = f"{'9' * 19}-{'9' * 19}"
    assert lines_of(client, job.id, after=largest) == {"lines": [], "next": largest}


@pytest.mark.parametrize("job_id", ["never-enqueued", "a:b", "x" * 300])
def test_the_log_of_an_unknown_job_is_404_json(client, job_id):
    response = client.get(f"/status/{job_id}/logs")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == 404


def test_the_log_keeps_the_newest_lines_up_to_its_cap(client, queue, run_queued, monkeypatch):
    monkeypatch.setenv("LOG_MAX_LINES", "3")
    job = queue.enqueue("tests.fixture_jobs.write_lines", [f"line {n}" for n in range(1, 6)])
    run_queued()
    assert [line["message"] for line in lines_of(client, job.id)["lines"]] == ["line 3", "line 4", "line 5"]


def test_a_long_message_is_cut(client, queue, run_queued):
    job = queue.enqueue("tests.fixture_jobs.write_lines", ["x" * (joblog.MAX_MESSAGE_CHARS + 10)])
    run_queued()
    assert len(lines_of(client, job.id)["lines"][0]["message"]) == joblog.MAX_MESSAGE_CHARS


def test_each_line_is_published_with_the_id_redis_gave_it(client, redis, queue, run_queued):
    pubsub = redis.pubsub()
    pubsub.psubscribe(log_channel_for("*"))
    job = queue.enqueue("tests.fixture_jobs.write_lines", ["hello <b>world</b>", "bye"])
    run_queued()
    published = []
    while (message := pubsub.get_message(timeout=0.01)) is not None:
        if message["type"] == "pmessage":
            published.append(json.loads(message["data"]))
    pubsub.close()
    assert published == lines_of(client, job.id)["lines"]


@pytest.mark.parametrize(
    ("func", "args", "expected_ttl"),
    [
        ("tests.fixture_jobs.write_lines", [["done"]], 77),
        ("tests.fixture_jobs.log_then_fail", ["broke"], DEFAULT_FAILURE_TTL),
    ],
)
def test_the_log_expires_with_its_job(redis, queue, run_queued, func, args, expected_ttl):
    job = queue.enqueue(func, *args, result_ttl=77, **CALLBACKS)
    run_queued()
    assert expected_ttl - 5 <= redis.ttl(log_key(job.id)) <= expected_ttl


def test_a_log_whose_end_nobody_records_expires_a_day_after_the_jobs_timeout(redis, queue, run_queued):
    job = queue.enqueue("tests.fixture_jobs.write_lines", ["no callbacks"], job_timeout=60)
    run_queued()
    expected = 60 + joblog.RUNNING_GRACE_S
    assert expected - 5 <= redis.ttl(log_key(job.id)) <= expected
