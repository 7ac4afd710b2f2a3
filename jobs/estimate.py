"""Time left from a job's own progress history: a smoothed rate, as tqdm estimates it.

Pure functions. `jobs.progress` folds each saved update into a small state kept in
`meta["progress"]["rate"]`; `jobs.contract` turns that state into `remaining_s`. The rate is the
ratio of two exponentially weighted moving averages, of the steps done and of the seconds taken
between saves (tqdm's `EMA`, smoothing 0.3: recent speed counts most, so a job that speeds up or
slows down is followed within a few saves), each bias-corrected by dividing by 1 - (1 - alpha)^n,
so the first samples are not pulled towards the zero they start from (in the rate the two
corrections cancel; they are kept so each average means what it says). A straight line from the
start would stay wrong for the rest of the job once its speed changes.
"""

from typing import Any

# tqdm's default: the weight of the newest sample.
SMOOTHING = 0.3
# Samples (saves that moved forward) before a time left is given: one rate is not evidence.
MIN_SAMPLES = 2


def fold(state: dict[str, Any] | None, current: float, at_s: float) -> dict[str, Any]:
    """The rate state after a save of `current` steps at `at_s` seconds (any clock, one per attempt).

    Args:
        state: the state of the previous save, or None for a job's first save (of this attempt).
        current: steps done at this save.
        at_s: the save's time on the clock the previous saves used.
    """
    if state is None or current < state["current"]:
        return {"current": current, "at": at_s, "steps": 0.0, "seconds": 0.0, "samples": 0}
    done, taken = current - state["current"], at_s - state["at"]
    if done <= 0 or taken <= 0:
        return state  # no movement to learn from: the next sample spans this save too
    keep = 1.0 - SMOOTHING
    return {
        "current": current,
        "at": at_s,
        "steps": SMOOTHING * done + keep * state["steps"],
        "seconds": SMOOTHING * taken + keep * state["seconds"],
        "samples": state["samples"] + 1,
    }


def remaining_s(state: dict[str, Any] | None, current: float, total: float) -> float | None:
    """Seconds left at the state's smoothed rate; None until MIN_SAMPLES samples, or with no rate."""
    if current >= total:
        return 0.0
    if not state or state.get("samples", 0) < MIN_SAMPLES:
        return None
    correction = 1.0 - (1.0 - SMOOTHING) ** state["samples"]
    steps, seconds = state["steps"] / correction, state["seconds"] / correction
    if steps <= 0 or seconds <= 0:
        return None
    return round((total - current) * seconds / steps, 1)


def time_left(
    state: dict[str, Any] | None, current: float, total: float, usual_s: float | None, elapsed_s: float | None
) -> float | None:
    """Seconds left: the job's own rate once it has MIN_SAMPLES samples; before that its usual duration
    (`jobs.durations.usual_s`) minus the time it has run, never below what its progress so far suggests
    (the time it took per step, for the steps left), and 0 once that usual time has passed.

    Args:
        state: the job's rate state (`fold`).
        current, total: its progress.
        usual_s: how long a job like it usually takes; None without history.
        elapsed_s: seconds since it started; None when unknown.
    """
    own = remaining_s(state, current, total)
    if own is not None or usual_s is None or elapsed_s is None:
        return own
    elapsed_s = max(0.0, elapsed_s)
    suggested = elapsed_s * (total - current) / current if 0 < current < total else 0.0
    return round(max(usual_s - elapsed_s, suggested, 0.0), 1)
