"""The start rate limit and the waiting cap hold across two web processes, under racing starts."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from rq import Queue

from web import tokens

pytestmark = pytest.mark.integration

# Queues no worker listens on, of their own: the folder's other tests leave jobs in "default".
HELD, RATED = f"held-{uuid.uuid4().hex[:6]}", f"rated-{uuid.uuid4().hex[:6]}"
CAP = 10
WEB_PROCESSES = 2
WEB_SETTINGS = {"START_RATE_LIMIT": "3", "QUEUE_MAX_JOBS": str(CAP), "QUEUES": f"default,{HELD},{RATED}"}


def test_two_processes_share_one_rate_limit_count(webs):
    body = {"name": "long_task", "queue": RATED}
    answers = [requests.post(f"{webs[n % 2]}/api/jobs", json=body, timeout=5) for n in range(5)]
    assert [answer.status_code for answer in answers] == [202, 202, 202, 429, 429]
    assert all(int(answer.headers["Retry-After"]) > 0 for answer in answers[3:])


def test_racing_starts_never_exceed_the_cap(server, webs):
    headers = {
        "Authorization": f"Bearer {tokens.create(server.client, f'racer-{HELD}', frozenset({'start:*'}))}"
    }

    def start(n: int) -> int:
        body = {"name": "long_task", "queue": HELD, **({"delay_seconds": 0.001} if n % 2 else {})}
        return requests.post(f"{webs[n % 2]}/api/jobs", json=body, headers=headers, timeout=10).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(start, range(4 * CAP)))
    assert sorted(set(codes)) == [202, 503]
    assert codes.count(202) == CAP
    held = Queue(HELD, connection=server.client)
    assert held.count + held.scheduled_job_registry.count == CAP
