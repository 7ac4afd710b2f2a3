"""Security headers: a strict CSP on our page, a nonce-based one on the dashboard, nosniff, no framing."""

import base64
import re

import pytest

from support.apps import UNIT_SETTINGS
from web import create_app
from web.headers import PAGE_POLICY, content_security_policy


def test_the_page_allows_no_inline_script_and_no_framing(client):
    response = client.get("/")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = response.get_data(as_text=True)
    assert re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", html) == []
    assert re.findall(r"<[^>]*\son[a-z]+\s*=", html) == []  # no inline event handler attribute


def test_json_answers_carry_the_headers_too(client):
    response = client.get("/api/jobs")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response.headers


def test_the_dashboard_gets_a_fresh_nonce_for_its_own_inline_script(redis):
    app = create_app(
        {
            **UNIT_SETTINGS,
            "REDIS_CONNECTION": redis,
            "RQ_DASHBOARD_USERNAME": "u",
            "RQ_DASHBOARD_PASSWORD": "p",
        }
    )
    auth = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
    client = app.test_client()
    nonces = []
    for _ in range(2):
        response = client.get("/rq/", headers=auth)
        policy = response.headers["Content-Security-Policy"]
        nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
        assert f'<script type="text/javascript" nonce="{nonce}">' in response.get_data(as_text=True)
        assert "'unsafe-eval'" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        nonces.append(nonce)
    assert nonces[0] != nonces[1]
    static = client.get("/rq/static/js/underscore-umd-min.js", headers=auth)
    assert static.status_code == 200 and "nonce" in static.headers["Content-Security-Policy"]


def test_a_policy_replaces_only_the_directives_it_names_and_refuses_others():
    policy = content_security_policy(connect_src="'self' https://a.test")
    assert policy == PAGE_POLICY.replace("connect-src 'self'", "connect-src 'self' https://a.test")
    with pytest.raises(ValueError, match="scrpt-src"):
        content_security_policy(scrpt_src="'self'")
