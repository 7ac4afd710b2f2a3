import pytest

from jobs.estimate import MIN_SAMPLES, fold, remaining_s


def run(saves: list[tuple[float, float]]) -> dict:
    """Fold (time, current) saves into a rate state."""
    state = None
    for at_s, current in saves:
        state = fold(state, current, at_s)
    return state


def test_no_time_left_until_enough_saves_moved_forward():
    state = run([(0, 0), (1, 1)])
    assert state["samples"] == MIN_SAMPLES - 1
    assert remaining_s(state, 1, 10) is None
    assert remaining_s(None, 0, 10) is None


def test_a_steady_job_gets_its_exact_time_left():
    state = run([(t * 2.0, t) for t in range(6)])
    assert remaining_s(state, 5, 20) == 30.0


def test_a_job_that_slows_down_is_followed_within_a_few_saves():
    fast = [(t * 1.0, t) for t in range(11)]
    slow = [(10 + t * 4.0, 10 + t) for t in range(1, 9)]
    state = run(fast + slow)
    straight_line = (40 - 18) * (slow[-1][0] / 18)
    assert remaining_s(state, 18, 40) == pytest.approx(22 * 4.0, rel=0.1)
    assert straight_line < 0.6 * 22 * 4.0, "a line from the start would still be far off"


def test_saves_that_did_not_move_are_spanned_by_the_next_sample():
    state = run([(0, 0), (1, 1), (2, 1), (3, 1), (4, 2), (5, 3)])
    assert state["samples"] == 3
    assert remaining_s(state, 3, 5) == pytest.approx(2.0 * (5 - 0) / 3, rel=0.3)


def test_going_back_starts_over_and_the_end_is_zero():
    state = run([(0, 0), (1, 5), (2, 10), (3, 2)])
    assert state["samples"] == 0 and state["current"] == 2
    assert remaining_s(state, 10, 10) == 0.0


def test_time_left_comes_from_the_usual_duration_until_the_job_has_two_samples():
    from jobs.estimate import time_left

    assert time_left(None, 0, 10, 35.0, 5.0) == 30.0
    assert time_left(None, 0, 10, None, 5.0) is None
    assert time_left(None, 0, 10, 35.0, 40.0) == 0.0  # past its usual time: nothing to promise
    # Never below what its own progress suggests: 5 of 10 steps in 20 s, so at least 20 s more.
    assert time_left(None, 5, 10, 30.0, 20.0) == 20.0


def test_the_jobs_own_rate_takes_over_after_two_samples():
    from jobs.estimate import fold, time_left

    state = fold(fold(fold(None, 0, 0.0), 1, 1.0), 2, 2.0)
    assert time_left(state, 2, 10, 100.0, 2.0) == 8.0
