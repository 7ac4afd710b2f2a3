from redis.connection import AbstractConnection
from rq.job import Job

from jobs.callbacks import CALLBACKS
from jobs.durations import record_run
from jobs.joblog import lines_after
from jobs.progress import report, resume_point
from jobs.snapshot import snapshot


def test_report_outside_a_job_does_nothing():
    assert report(1, 2, "no job here") is False


def test_updates_are_coalesced_and_the_last_is_never_dropped(queue, run_queued, published):
    job = queue.enqueue("tests.fixture_jobs.report_at", [0.0, 0.01, 0.02, 0.15, 0.16], 10, **CALLBACKS)
    run_queued()
    events = published()
    assert [(event["state"], event["current"]) for event in events] == [
        ("PROGRESS", 1),
        ("PROGRESS", 4),
        ("PROGRESS", 5),
        ("SUCCESS", 10),
    ]
    assert job.get_meta(refresh=True)["progress"]["current"] == 5


def test_the_update_that_reaches_total_is_saved_at_once(queue, run_queued, published):
    queue.enqueue("tests.fixture_jobs.report_at", [0.0, 0.01, 0.02], 3)
    run_queued()
    assert [event["current"] for event in published()] == [1, 3]


def test_rate_comes_from_the_environment(queue, run_queued, published, monkeypatch):
    monkeypatch.setenv("PROGRESS_MAX_SAVES_PER_S", "1000")
    queue.enqueue("tests.fixture_jobs.report_at", [0.0, 0.01, 0.02], 10)
    run_queued()
    assert [event["current"] for event in published()] == [1, 2, 3]


def test_published_payload_matches_the_stored_one(redis, queue, run_queued, published):
    job = queue.enqueue("tests.fixture_jobs.count", 1, **CALLBACKS)
    run_queued()
    progress_event, final_event = published()
    assert progress_event["updated_at"] == job.get_meta(refresh=True)["progress"]["updated_at"]
    assert final_event == snapshot(job.id, redis)


def test_report_raises_stop_requested_after_the_save_that_sees_the_request(
    redis, queue, run_queued, published
):
    job = queue.enqueue("tests.fixture_jobs.count_until_stopped", 10, **CALLBACKS)
    run_queued()
    events = published()
    assert [event["current"] for event in events[:-1]] == [1, 2, 3]
    assert (events[-1]["state"], events[-1]["status"]) == ("FAILURE", "stopped")
    assert snapshot(job.id, redis)["status"] == "stopped"


def test_resume_point_is_zero_outside_a_job():
    assert resume_point() == 0


def two_steps(trips: list) -> tuple[int, int]:
    """Report three steps, the last with its log line; returns the round trips of the last two."""
    report(1, 4, "connects", clock=lambda: 0.0)
    before = len(trips)
    report(2, 4, "plain", clock=lambda: 10.0)
    middle = len(trips)
    report(3, 4, "logged", log=True, clock=lambda: 20.0)
    return middle - before, len(trips) - middle


def test_a_save_with_its_log_line_is_one_round_trip(redis, monkeypatch):
    trips: list = []
    send = AbstractConnection.send_packed_command

    def counted(self, *args, **kwargs):
        trips.append(1)
        return send(self, *args, **kwargs)

    job = Job.create(two_steps, args=[trips], connection=redis)
    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    assert job.perform() == (1, 1)
    monkeypatch.undo()
    assert [line["message"] for line in lines_after(redis, job.id)] == ["step 3 of 4: logged"]


def test_lines_of_deferred_steps_are_kept_and_written_in_order(redis, queue, run_queued, published):
    job = queue.enqueue("tests.fixture_jobs.report_at", [0.0, 0.01, 0.02], 10, log=True, **CALLBACKS)
    run_queued()
    assert [event["current"] for event in published()][:-1] == [1, 3]
    assert [line["message"] for line in lines_after(redis, job.id)] == [
        "step 1 of 10: step 1",
        "step 2 of 10: step 2",
        "step 3 of 10: step 3",
    ]


def test_saves_carry_the_time_left_once_the_rate_has_evidence(queue, run_queued, published):
    queue.enqueue("tests.fixture_jobs.report_at", [0.0, 2.0, 4.0, 6.0], 10)
    run_queued()
    assert [event["remaining_s"] for event in published()] == [None, None, 14.0, 12.0]


def test_before_two_samples_the_time_left_comes_from_the_usual_duration(redis, queue, run_queued, published):
    for _ in range(3):
        record_run(redis, "sized", 30.0, 10.0)  # 3 s per unit
    options = {"description": "sized", "meta": {"size": 10.0}}
    queue.enqueue("tests.fixture_jobs.report_at", [0.0, 1.0, 2.0, 3.0], 10, **options)
    run_queued()
    first, second, third, fourth = published()
    # The first save reads the history in its own round trip: it cannot say it yet.
    assert "usual_s" not in first and first["remaining_s"] is None
    # Then: the usual 30 s minus the little it has run, though 2 of 10 steps in ~0 s suggest less.
    assert second["usual_s"] == 30.0 and 29.0 <= second["remaining_s"] <= 30.0
    # Two samples of its own rate: 1 s a step, 7 steps left; then 6.
    assert (third["remaining_s"], fourth["remaining_s"]) == (7.0, 6.0)


def test_a_later_job_of_the_same_name_in_the_same_process_says_it_from_its_first_save(
    redis, queue, run_queued, published
):
    record_run(redis, "sized-twice", 30.0, 10.0)
    options = {"description": "sized-twice", "meta": {"size": 10.0}}
    queue.enqueue("tests.fixture_jobs.report_at", [0.0], 10, **options)
    queue.enqueue("tests.fixture_jobs.report_at", [0.0], 10, **options)
    run_queued()
    first, second = published()
    assert "usual_s" not in first and second["usual_s"] == 30.0


def test_a_name_without_history_is_not_remembered_as_having_none(redis, queue, run_queued, published):
    options = {"description": "sized-later", "meta": {"size": 10.0}}
    queue.enqueue("tests.fixture_jobs.report_at", [0.0], 10, **options)
    run_queued()
    record_run(redis, "sized-later", 30.0, 10.0)
    queue.enqueue("tests.fixture_jobs.report_at", [0.0, 1.0], 10, **options)
    run_queued()
    first, second, third = published()
    assert "usual_s" not in second and third["usual_s"] == 30.0
