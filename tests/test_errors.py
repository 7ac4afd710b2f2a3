"""Errors by audience: JSON for API routes and JSON clients, an HTML page for people on page routes."""

import pytest

from web.errors import answer_error

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_a_person_on_an_unknown_page_gets_an_html_error_page(client):
    response = client.get("/nowhere", headers={"Accept": BROWSER_ACCEPT})
    html = response.get_data(as_text=True)
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "<h1>404 Not Found</h1>" in html and 'href="/"' in html
    assert "/static/progress.css" in html


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/html;q=0.5"])
def test_a_client_without_a_preference_for_html_gets_json(client, accept):
    response = client.get("/nowhere", headers={"Accept": accept} if accept else {})
    assert response.status_code == 404 and response.get_json()["error"]["code"] == 404


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/status/no-such-job", 404),
        ("GET", "/status/no-such-job/events", 404),
        ("POST", "/status/no-such-job/cancel", 404),
        ("GET", "/longtask", 405),
        ("POST", "/api/jobs", 400),
        ("GET", "/api/nowhere", 404),
        ("GET", "/rq/nowhere", 404),
        ("POST", "/healthz", 405),
        ("POST", "/metrics", 405),
    ],
)
def test_api_routes_answer_json_even_to_a_browser(client, method, path, status):
    response = client.open(path, method=method, headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == status and response.get_json()["error"]["code"] == status


def test_the_page_escapes_the_message(app):
    with app.test_request_context("/somewhere", headers={"Accept": BROWSER_ACCEPT}):
        page, status, headers = answer_error(400, "<script>alert(1)</script>")
    assert status == 400 and headers["Content-Type"].startswith("text/html")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page


def test_a_page_route_keeps_its_allow_header_on_the_html_page(client):
    response = client.post("/", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 405 and response.mimetype == "text/html"
    assert "GET" in response.headers["Allow"]
