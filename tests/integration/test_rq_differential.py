"""The same scenarios under RQ's forking worker and under ours: RQ's keys must end the same.

Each scenario runs twice on this module's own database (a fresh embedded server, then a database
claimed on the local Redis), emptied before each run: once with the stock `rq.Worker` and once
with `jobs.worker.Worker`, each in burst mode with the scheduler, in this process. A job to act
on while it runs (stop, cancel) is acted on from a thread that waits until it is started. Job,
queue, group and worker names are fixed, so both runs use the same keys.

After each run, and at any checkpoint a scenario takes between bursts, every key is read and
rendered (`tests.redis_state`: execution ids, timestamps, pids, hosts and durations masked). The
`rq:` keys and the keys the scenarios' jobs write (`differential:`, e.g. the order they ran in)
must render the same; the rest (our own `rq-progress:` keys) is listed in a failure's output,
not compared. Nothing is masked for our worker's sake. RQ's log lines of the two runs (the `rq`
loggers at INFO, `tests.worker_log`) must be the same too, in any order.

This is what catches an RQ release that writes something new: the stock worker writes it, ours
(which writes RQ's bookkeeping through its own scripts) does not.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq.worker.worker_classes import Worker as RQWorker

from jobs.worker import Worker as OurWorker
from support.local_redis import LOCK_KEY, OWNER_KEY, claim_local_database, require_local_redis
from support.servers import start_embedded_redis
from tests.redis_state import diff, listing, render
from tests.rq_scenarios import SCENARIOS, Run
from tests.worker_log import read_log

# Compared: RQ's keys, and what the scenarios' jobs wrote (what a user of those jobs sees).
COMPARED = ("rq:", "differential:")
# The local Redis's claim on the database (support.local_redis): kept across runs, never shown.
CLAIM_KEYS = (OWNER_KEY, LOCK_KEY)


class StockWorker(RQWorker):
    """RQ's forking worker, as shipped but for one step of its teardown, which writes nothing.

    RQ's `unsubscribe` sends UNSUBSCRIBE, then stops its pub/sub thread and joins it for up to
    1 s; the thread, woken by the UNSUBSCRIBE reply before the stop, is back in a 60 s read by
    then, so every burst would end 1 s late. Stopping the thread first lets the reply end it.
    """

    def unsubscribe(self) -> None:
        """Stop the pub/sub thread, then RQ's own `unsubscribe`."""
        if self.pubsub_thread:
            self.pubsub_thread.stop()
        super().unsubscribe()


@pytest.fixture(scope="module", params=["embedded", "local"])
def database(request) -> Iterator[Redis]:
    """A database for this module alone: a fresh embedded server, or a database claimed on the local Redis."""
    if request.param == "embedded":
        server = start_embedded_redis()
        yield Redis.from_url(server.connection_url + "/0")
        server.stop()
        return
    require_local_redis()
    claimed = claim_local_database()
    yield claimed.client
    claimed.release()


# -- running and comparing ----------------------------------------------------------------------


def clear(connection: Redis) -> None:
    """Delete every key but the database's claim."""
    doomed = [key for key in connection.keys("*") if key.decode() not in CLAIM_KEYS]
    if doomed:
        connection.delete(*doomed)


def run_under(worker_class: type, scenario: Callable[[Run], None], connection: Redis, tmp: Path) -> Run:
    """Run `scenario` from an empty database under `worker_class`; its last checkpoint is "end"."""
    clear(connection)
    for gate in tmp.glob("gate-*"):
        gate.unlink()
    run = Run(connection, worker_class, tmp, tmp / f"{worker_class.__module__}.log")
    scenario(run)
    run.checkpoint("end")
    return run


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[scenario.__name__ for scenario in SCENARIOS])
def test_our_worker_leaves_what_rq_leaves(scenario, database, tmp_path):
    stock = run_under(StockWorker, scenario, database, tmp_path)
    ours = run_under(OurWorker, scenario, database, tmp_path)
    differences = []
    for name in stock.checkpoints:
        expected = render(stock.checkpoints[name].select(COMPARED))
        actual = render(ours.checkpoints[name].select(COMPARED))
        differences.append(diff(expected, actual, f"rq.Worker, {name}", f"jobs.worker.Worker, {name}"))
        for label, run in (("rq.Worker", stock), ("jobs.worker.Worker", ours)):
            others = run.checkpoints[name].omit(COMPARED + CLAIM_KEYS)
            print(f"--- not compared, {label}, {name}:\n{listing(others)}")
    differences.append(
        diff(read_log(stock.log), read_log(ours.log), "rq.Worker, log", "jobs.worker.Worker, log")
    )
    found = "".join(differences)
    assert not found, f"RQ's keys or log lines differ (- rq.Worker, + jobs.worker.Worker):\n{found}"
