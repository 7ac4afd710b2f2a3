import math

import pytest

from jobs.registry import BadParams, UnknownJob, get_spec, start_job


def demo_args(**args):
    return get_spec("long_task").validate(args)


def test_demo_defaults():
    assert demo_args() == {"steps": None, "step_seconds": 1.0}


def test_demo_accepts_integers_for_seconds():
    assert demo_args(steps=3, step_seconds=0) == {"steps": 3, "step_seconds": 0}


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
