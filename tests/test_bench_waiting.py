"""The waiting bench's report (`bench/waiting.py`), from figures of the shape it measures."""

from bench import waiting

FOUND = {
    "workers": 2,
    "steps": 10,
    "step_s": 0.3,
    "expected_start": {
        "jobs": 20,
        "judged": 17,
        "no_estimate": 0,
        "relative": {"median": 0.05, "max": 0.18, "within_target": 1.0},
        "absolute_s": {"median": 0.08, "max": 0.34},
    },
    "time_left": {
        "saves": 10,
        "null": 1,
        "from_first_save": {"median": 0.005, "max": 0.02, "within_target": 1.0},
        "history_only": {"median": 0.005, "max": 0.005, "within_target": 1.0},
        "usual_s": 3.0,
    },
    "reads": {
        "position": 98,
        "waiting": {"ok_per_s": 1222.0},
        "finished": {"ok_per_s": 1577.0},
        "ratio": 0.775,
    },
}


def test_the_report_names_each_figure_and_its_target():
    text = waiting.markdown(FOUND)
    assert "| `expected_start_s` of 20 jobs started at once: median / max error | 5% / 18% (17 judged" in text
    assert "| ... within 25% of the real wait | 100% |" in text
    assert "from its first save: median / max error | 0% / 2% (10 saves, 1 null) | median <= 20% |" in text
    assert "| `/status` of a job at position 98 vs a finished job's, req/s | 1222 vs 1577 (x0.775) |" in text


def test_a_summary_of_nothing_says_so():
    assert waiting._summary([], 0.25) == {"median": None, "max": None, "within_target": None}
    assert waiting._summary([0.1, 0.3, 0.2], 0.25) == {"median": 0.2, "max": 0.3, "within_target": 0.667}
