import math
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from rq import Queue
from rq.job import JobStatus
from rq.registry import ScheduledJobRegistry

from jobs import idempotency
from jobs.keys import idempotency_key
from jobs.registry import (
    CATALOG,
    BadParams,
    QueueFull,
    UnknownJob,
    catalog,
    get_spec,
    start_job,
)
from tests.fixture_jobs import flaky_job


def demo_args(**args):
    return get_spec("long_task").validate(args)


def test_demo_defaults():
    assert demo_args() == {"steps": None, "step_seconds": 1.0}


def test_demo_accepts_integers_for_seconds():
    assert demo_args(steps=3, step_seconds=0) == {"steps": 3, "step_seconds": 0}


def test_integral_float_is_an_integer_as_json_schema_says():
    assert demo_args(steps=3.0) == {"steps": 3, "step_seconds": 1.0}
    assert type(demo_args(steps=3.0)["steps"]) is int


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 1001}, "steps"),
        ({"steps": "10"}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"steps": True}, "steps"),
        ({"step_seconds": -1}, "step_seconds"),
        ({"step_seconds": 10.5}, "step_seconds"),
        ({"step_seconds": math.nan}, "step_seconds"),
        ({"step_seconds": math.inf}, "step_seconds"),
        ({"step_seconds": None}, "step_seconds"),
        ({"step_seconds": [1]}, "step_seconds"),
        ({"step_seconds": True}, "step_seconds"),
        ({"step_seconds": "1"}, "step_seconds"),
        ({"bogus": 1}, "bogus"),
        ({"steps": 1000, "step_seconds": 1}, "600"),
        ({"step_seconds": 13}, "step_seconds"),
    ],
)
def test_bad_arguments_are_named(args, named):
    with pytest.raises(BadParams, match=named):
        demo_args(**args)


def test_arguments_must_be_an_object():
    with pytest.raises(BadParams, match="JSON object"):
        get_spec("long_task").validate([1, 2])


@pytest.mark.parametrize("name", ["nope", "", None, ["long_task"]])
def test_unknown_job_names_the_known_ones(name):
    with pytest.raises(UnknownJob, match="long_task"):
        get_spec(name)


def test_start_job_enqueues_by_dotted_path_with_callbacks(redis):
    job = start_job(redis, "long_task", {"steps": 2, "step_seconds": 0})
    assert job.func_name == "jobs.demo.long_task"
    assert job.kwargs == {"steps": 2, "step_seconds": 0}
    assert job.origin == "default"
    assert job.success_callback.__name__ == "on_success"
    assert job.timeout == 660


@pytest.fixture
def flaky(monkeypatch):
    """Register a test job that fails its first `failures` attempts, retried twice."""
    spec = flaky_job((10, 20))
    monkeypatch.setitem(CATALOG, "flaky", spec)
    return spec


def test_every_registered_job_describes_itself_as_json_schema():
    described = {spec.name: spec.describe() for spec in catalog()}
    assert set(described) == {"long_task", "send_email"}
    steps = described["long_task"]["parameters"]["properties"]["steps"]
    assert steps == {
        "anyOf": [{"type": "integer", "minimum": 1, "maximum": 1000}, {"type": "null"}],
        "default": None,
        "description": "steps; random 10 to 50 when absent",
    }
    assert "600 (10 minutes)" in described["long_task"]["parameters"]["description"]
    mail = described["send_email"]
    assert mail["parameters"]["required"] == ["to", "subject"]
    assert mail["parameters"]["properties"]["to"]["maxItems"] == 100
    assert mail["retry"] == {"max": 3, "intervals_s": [10, 30, 60]}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"subject": "hi"}, "to: Field required"),
        ({"to": [], "subject": "hi"}, "at least 1 item"),
        ({"to": "a@example.com", "subject": "hi"}, "to: Input should be a valid list"),
        ({"to": ["a@b c@d"], "subject": "hi"}, "to[0]"),
        ({"to": ["a@example.com\n"], "subject": "hi"}, "to[0]"),
        ({"to": ["not-an-address"], "subject": "hi"}, "to[0]"),
        ({"to": ["a@example.com", 7], "subject": "hi"}, "to[1]"),
        ({"to": ["a@example.com", "b@x.org\r\nBcc: c@x.org"], "subject": "hi"}, "to[1]"),
        ({"to": ["a@example.com"] * 101, "subject": "hi"}, "at most 100 items"),
        ({"to": ["a@example.com"], "subject": ""}, "subject"),
        ({"to": ["a@example.com"], "subject": "hi\nBcc: c@x.org"}, "subject"),
        ({"to": ["a@example.com"], "subject": "hi\n"}, "subject"),
        ({"to": ["a@example.com"], "subject": "x" * 201}, "at most 200 characters"),
    ],
)
def test_email_arguments_are_checked(args, named):
    with pytest.raises(BadParams) as excinfo:
        get_spec("send_email").validate(args)
    assert named in str(excinfo.value)


def test_start_with_a_delay_schedules_the_job(redis):
    job = start_job(redis, "long_task", {"steps": 1}, delay_s=30)
    assert job.get_status() == JobStatus.SCHEDULED
    eta = ScheduledJobRegistry("default", connection=redis).get_scheduled_time(job)
    assert 25 < (eta - datetime.now(UTC)).total_seconds() <= 31
    assert Queue("default", connection=redis).count == 0


@pytest.mark.parametrize(
    ("delay", "named"),
    [(-1, "greater than or equal to 0"), (86401, "less than or equal to 86400"), ("5", "number")],
)
def test_bad_delay_is_named(redis, delay, named):
    with pytest.raises(BadParams, match=f"delay_seconds.*{named}"):
        start_job(redis, "long_task", {}, delay_s=delay)


def test_queue_override(redis):
    assert start_job(redis, "long_task", {}, queue="high").origin == "high"


def test_full_queue_refuses_and_keeps_what_is_queued(redis):
    first = start_job(redis, "long_task", {}, max_queued=2)
    second = start_job(redis, "long_task", {}, max_queued=2)
    with pytest.raises(QueueFull, match="default"):
        start_job(redis, "long_task", {}, max_queued=2)
    assert Queue("default", connection=redis).job_ids == [first.id, second.id]
    assert start_job(redis, "long_task", {}, queue="low", max_queued=2).origin == "low"


def test_same_idempotency_key_returns_the_same_job(redis):
    first = start_job(redis, "long_task", {"steps": 2}, idempotency_key="click-1")
    again = start_job(redis, "long_task", {"steps": 2}, idempotency_key="click-1")
    other = start_job(redis, "long_task", {"steps": 2}, idempotency_key="click-2")
    assert again.id == first.id != other.id
    assert Queue("default", connection=redis).count == 2
    assert 86000 < redis.ttl(idempotency_key("click-1")) <= 86400


def test_idempotency_key_reused_for_another_request_is_a_conflict(redis):
    start_job(redis, "long_task", {"steps": 2}, idempotency_key="k")
    with pytest.raises(idempotency.IdempotencyConflict):
        start_job(redis, "long_task", {"steps": 3}, idempotency_key="k")


def test_refused_start_gives_its_idempotency_key_back(redis):
    start_job(redis, "long_task", {}, max_queued=1)
    with pytest.raises(QueueFull):
        start_job(redis, "long_task", {}, max_queued=1, idempotency_key="k")
    assert start_job(redis, "long_task", {}, queue="low", idempotency_key="k").origin == "low"


def test_concurrent_double_click_starts_one_job(redis):
    with ThreadPoolExecutor(8) as pool:
        jobs = list(pool.map(lambda _: start_job(redis, "long_task", {}, idempotency_key="dbl"), range(8)))
    assert len({job.id for job in jobs}) == 1
    assert Queue("default", connection=redis).count == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "a b"])
def test_bad_idempotency_key_is_refused(redis, key):
    with pytest.raises(idempotency.BadIdempotencyKey):
        start_job(redis, "long_task", {}, idempotency_key=key)


def test_retry_policy_reaches_rq(redis, flaky):
    job = start_job(redis, "flaky", {"key": "k", "failures": 1})
    assert (job.retries_left, job.retry_intervals) == (2, [10, 20])
    assert job.meta == {"retry": {"attempt": 0, "max": 2}}
