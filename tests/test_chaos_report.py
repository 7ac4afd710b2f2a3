"""`make chaos`'s accounting, on fakeredis: what counts as started, stuck, lost and ran twice."""

from collections import Counter

from bench.chaos_report import cause_of, classify, render, taken_counts, worker_pids
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


def test_each_failure_is_put_down_to_the_fault_that_hit_its_own_process_first():
    worker_kill = {"kind": "worker", "at": 105.0, "pid": 7}
    horse_kill = {"kind": "horse", "at": 105.0, "worker_pid": 7}
    redis_fault = {"kind": "redis", "at": 104.0, "until": 106.0}
    run = (100.0, 130.0)
    assert cause_of(run, 7, [redis_fault, worker_kill]) == "worker SIGKILLed"
    assert cause_of(run, 7, [redis_fault, horse_kill]) == "work horse SIGKILLed"
    assert cause_of(run, 8, [redis_fault, worker_kill, horse_kill]) == "Redis fault"  # another worker's
    assert cause_of((110.0, 130.0), 7, [worker_kill, redis_fault]) == "unexplained"  # before its run
    assert cause_of((107.0, 130.0), 7, [redis_fault]) == "Redis fault"  # within a second of its start


def test_the_table_shows_every_cause_even_at_zero(redis, tmp_path):
    (tmp_path / "worker-0.log").write_text("10:00:00 Worker w0: started with PID 42, version 3.0.0\n")
    assert worker_pids(tmp_path) == {"w0": 42}
    counts = classify(redis, [], Counter(), events=[], pids={})
    result = {
        **counts,
        "when": "now",
        "mode": "aof",
        "settings": {"jobs": 0, "workers": 1, "webs": 1},
        "faults": {},
        "refused": 0,
        "faults_s": 1.0,
        "settle_s": 2.0,
    }
    assert "| failed, caused by: Redis fault | 0 |" in render(result)
