"""In Chromium: a page from another origin tries a form POST and no-cors fetches; nothing starts."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from support.wait import wait_until

HOSTILE_PAGE = """<!doctype html>
<title>elsewhere</title>
<iframe name="sink"></iframe>
<form id="form" method="post" action="{app}/longtask" target="sink"></form>
<script>
  const tries = [
    fetch("{app}/longtask", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
                              body: '{{"steps": 1}}'}}),
    fetch("{app}/api/jobs", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
                              body: '{{"name": "long_task"}}'}}),
    fetch("{app}/longtask", {{method: "POST", mode: "no-cors"}}),
  ];
  Promise.allSettled(tries).then(() => {{ document.title = "fetched"; }});
  document.getElementById("form").submit();
</script>
"""


@pytest.fixture
def hostile_site(webs):
    """A page served from http://localhost:<another port>: another origin than the app on 127.0.0.1."""
    (app,) = webs
    page = HOSTILE_PAGE.format(app=app).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's hook name)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}/"
    server.shutdown()


def refusals(server, app: str) -> int:
    log = server.logs / f"web-{urlsplit(app).port}.log"
    return log.read_text(errors="replace").count("refused cross-site POST")


def test_a_page_elsewhere_starts_nothing_and_our_page_still_does(server, webs, browser, hostile_site):
    (app,) = webs
    jobs_before, refused_before = len(server.client.keys("rq:job:*")), refusals(server, app)
    context = browser.new_context()
    try:
        hostile = context.new_page()
        hostile.goto(hostile_site)
        hostile.wait_for_function("document.title === 'fetched'", timeout=15_000)
        # All four requests reached the app and were refused there (not lost on the way).
        wait_until(lambda: refusals(server, app) - refused_before >= 4, 15, what="four refusals in the log")
        assert len(server.client.keys("rq:job:*")) == jobs_before

        ours = context.new_page()
        ours.goto(f"{app}/")
        ours.click("#start")
        ours.wait_for_selector(".job", timeout=15_000)
        assert len(server.client.keys("rq:job:*")) == jobs_before + 1
    finally:
        context.close()
