"""The time-left bench's arithmetic (the bench itself runs real processes: `python -m bench.time_left`)."""

from datetime import UTC, datetime, timedelta

from bench.time_left import errors, markdown, saved_at

START = datetime(2026, 1, 1, tzinfo=UTC)


def save(step: int, at_s: float, remaining_s: float | None, total: int = 8) -> dict:
    moment = (START + timedelta(seconds=at_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"current": step, "total": total, "remaining_s": remaining_s, "updated_at": moment}


def test_an_exact_estimate_has_no_error_and_a_quarter_is_the_first_judged():
    saves = [save(step, step * 2.0, (8 - step) * 2.0) for step in range(9)]
    found = errors(saves, saved_at(saves[-1]))
    assert found["saves_judged"] == 5  # steps 2 to 6: a quarter done, up to the last step but one
    assert found["ours"] == {"median": 0.0, "max": 0.0, "within_target": 1.0}
    assert found["straight_line"]["max"] == 0.0


def test_a_change_of_pace_counts_the_saves_until_the_estimate_is_back_within_target():
    # One second a step up to step 4, then two: the truth at step n is the time to step 8.
    times = [float(step) if step <= 4 else 4.0 + 2 * (step - 4) for step in range(9)]
    estimates = [None, None, 6.0, 5.0, 4.0, 3.0, 4.0, 2.0, 0.0]
    saves = [save(step, times[step], estimates[step]) for step in range(9)]
    found = errors(saves, saved_at(saves[-1]), change_after=4)
    assert found["saves_to_settle"] == 1  # step 5 says 3 s for 6 (50% off), step 6 says 4 s for 4
    assert "| slows 3x half way |" in markdown(
        {"steps": 8, "step_s": 1.0, "change_after_step": 4, "steady": found, "slows_3x_half_way": found}
        | {"speeds_up_3x_half_way": found}
    )
