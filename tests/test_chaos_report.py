"""`make chaos`'s accounting, on fakeredis: what counts as started, stuck, lost and ran twice."""

from collections import Counter

from bench.chaos_report import classify, render, taken_counts
from jobs.registry import start_job


def test_jobs_are_counted_from_redis_and_the_workers_logs(redis, run_queued, tmp_path):
    done = start_job(redis, "long_task", {"steps": 1, "step_seconds": 0}).id
    run_queued()
    waiting = start_job(redis, "long_task", {"steps": 1, "step_seconds": 0}).id
    never = "0" * 32
    (tmp_path / "worker-0.log").write_text(
        f"10:00:00 Worker w0: default: long_task ({done})\n"
        f"10:00:01 Worker w0: default: Job OK ({done})\n"
        f"10:00:02 Worker w1: default: long_task ({waiting})\n"
        f"10:00:03 Worker w1: default: long_task ({waiting})\n"
    )
    taken = taken_counts(tmp_path)
    assert taken == Counter({done: 1, waiting: 2})

    counts = classify(redis, [done, waiting, never], taken)
    assert (counts["accepted"], counts["started"], counts["succeeded"]) == (3, 2, 1)
    assert (counts["stuck_ids"], counts["lost_ids"], counts["ran_twice"]) == ([waiting], [never], 1)

    result = {
        **counts,
        "when": "now",
        "mode": "aof",
        "settings": {"jobs": 3, "workers": 1, "webs": 1},
        "faults": {"worker SIGKILLed": 2},
        "refused": 0,
        "faults_s": 1.0,
        "settle_s": 2.0,
    }
    table = render(result)
    assert "| stuck | 1 |" in table and "| lost | 1 |" in table and "1 jobs had not ended" in table
