"""Helpers for unit tests that drive the app through its test client (processes and waiting: support/)."""

from flask.testing import FlaskClient


def open_page(client: FlaskClient) -> None:
    """Load the page, as a browser does before it starts anything: it gets its session cookie."""
    assert client.get("/").status_code == 200


def start_demo(client: FlaskClient, **body) -> dict:
    """POST /longtask (with `body` as its JSON, if any); asserts the 202 and returns its body."""
    response = client.post("/longtask", json=body or None)
    assert response.status_code == 202
    assert response.headers["Location"] == response.get_json()["status_url"]
    return response.get_json()
