"""Tokens made with the CLI, used over HTTP against gunicorn; only a job's owner cancels it."""

import subprocess
import uuid

import pytest
import requests

from support.servers import BIN, ROOT

pytestmark = pytest.mark.integration

EMAIL = {"name": "send_email", "args": {"to": ["a@example.com"], "subject": "hi"}, "delay_seconds": 3600}


def flask_cli(server, *args: str) -> subprocess.CompletedProcess:
    """`flask --app web ...` as an operator runs it: REDIS_URL set, no SECRET_KEY."""
    env = {"REDIS_URL": server.url, "PATH": str(BIN)}
    return subprocess.run(
        [str(BIN / "flask"), "--app", "web", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_a_cli_token_starts_closed_jobs_until_revoked(server, webs):
    (web,) = webs
    name = f"ci-{uuid.uuid4().hex[:6]}"
    created = flask_cli(server, "tokens", "create", name, "--scope", "start:send_email")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("rqp_") and secret not in "\n".join(created.stdout.splitlines()[:-1])

    anonymous = requests.post(f"{web}/api/jobs", json=EMAIL, timeout=5)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].lower().startswith("bearer")
    started = requests.post(f"{web}/api/jobs", json=EMAIL, headers=bearer(secret), timeout=5)
    assert started.status_code == 202
    demo_only = flask_cli(server, "tokens", "create", f"{name}-demo", "--scope", "start:long_task")
    other = demo_only.stdout.strip().splitlines()[-1]
    refused = requests.post(f"{web}/api/jobs", json=EMAIL, headers=bearer(other), timeout=5)
    assert refused.status_code == 403 and "start:send_email" in refused.json()["error"]["message"]

    listed = flask_cli(server, "tokens", "list")
    line = next(row for row in listed.stdout.splitlines() if row.startswith(name + " "))
    assert "start:send_email" in line and "never" not in line.split("UTC", 1)[1]
    assert secret not in listed.stdout

    assert flask_cli(server, "tokens", "revoke", name).returncode == 0
    revoked = requests.post(f"{web}/api/jobs", json=EMAIL, headers=bearer(secret), timeout=5)
    assert revoked.status_code == 401


def test_only_the_owner_or_cancel_any_cancels(server, webs):
    (web,) = webs
    owner, stranger = requests.Session(), requests.Session()
    owner.get(f"{web}/", timeout=5)
    stranger.get(f"{web}/", timeout=5)
    first = owner.post(f"{web}/longtask", json={"steps": 5}, timeout=5).json()
    second = owner.post(f"{web}/longtask", json={"steps": 5}, timeout=5).json()
    assert stranger.post(f"{web}{first['cancel_url']}", timeout=5).status_code == 403
    assert requests.post(f"{web}{first['cancel_url']}", timeout=5).status_code == 403
    assert owner.get(f"{web}{first['status_url']}", timeout=5).json()["state"] == "PENDING"
    assert owner.post(f"{web}{first['cancel_url']}", timeout=5).status_code == 200

    created = flask_cli(server, "tokens", "create", f"ops-{uuid.uuid4().hex[:6]}", "--scope", "cancel:any")
    operator = bearer(created.stdout.strip().splitlines()[-1])
    assert requests.post(f"{web}{second['cancel_url']}", headers=operator, timeout=5).status_code == 200
