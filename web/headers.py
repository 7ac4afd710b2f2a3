"""Security headers on every response: a Content-Security-Policy, nosniff, no framing.

Our page loads only its own files and runs no inline script (its initial rows are a JSON data
block, which no CSP governs), so the policy allows 'self' and nothing else, but for the page's
event streams when they have their own listener (`EVENTS_PORT`). A blueprint that
needs another policy sets its own header first (the dashboard's, in web/operators.py); this one
fills in only what is missing.
"""

from flask import Flask, Response

from web.shared_routes import streams_origin

# Every directive a policy of ours sets, with the page's sources: the app's own files only.
_PAGE_SOURCES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def content_security_policy(**sources: str) -> str:
    """The page's policy with some directives' sources replaced: `script_src="..."` for `script-src`."""
    replaced = {name.replace("_", "-"): value for name, value in sources.items()}
    unknown = replaced.keys() - _PAGE_SOURCES.keys()
    if unknown:
        raise ValueError(f"not a directive of ours: {sorted(unknown)}")
    return "; ".join(f"{name} {value}" for name, value in {**_PAGE_SOURCES, **replaced}.items())


PAGE_POLICY = content_security_policy()


def page_policy() -> str:
    """PAGE_POLICY, letting the page connect to the event-stream listener when it is on another port."""
    origin = streams_origin()
    if origin is None:
        return PAGE_POLICY
    return content_security_policy(connect_src=f"'self' {origin}")


def add_security_headers(response: Response) -> Response:
    """Add the CSP, nosniff and no-framing headers a response does not set itself."""
    response.headers.setdefault("Content-Security-Policy", page_policy())
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def init_app(app: Flask) -> None:
    """Add the headers to every response of the app."""
    app.after_request(add_security_headers)
