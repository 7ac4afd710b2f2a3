"""Guards for every request that changes state: none from another site, and JSON bodies only.

One app-wide `before_request`, so a route added later is guarded without doing anything. A
request changes state when its method is not GET/HEAD/OPTIONS, or when its route also takes
POST (rq-dashboard's `/rq/requeue/<queue>` requeues on a plain GET). Such a request must come
from this origin, and a non-empty body must be `application/json`: a page on another site can
make a browser send a form or a `text/plain` body without asking first, never JSON.
"""

import logging
from urllib.parse import urlsplit

from flask import Flask, Response, request

from web.errors import error_response

log = logging.getLogger(__name__)

# Browsers send Sec-Fetch-Site on every request; these values mean "not from another site".
# "same-site" is refused: localhost:5000 and localhost:8000 are the same site, other origins.
_SAME_ORIGIN_FETCH_SITES = frozenset({"same-origin", "none"})
JSON = "application/json"


def changes_state() -> bool:
    """Whether the request can change state: any method but GET/HEAD/OPTIONS, or a route that takes POST."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        return True
    rule = request.url_rule
    return rule is not None and "POST" in (rule.methods or ())


def is_same_origin() -> bool:
    """Whether the browser says the request comes from this origin (clients sending neither header pass).

    `Origin` must name this host and port; `Sec-Fetch-Site`, when present, must be same-origin or
    none. Behind a proxy, the proxy must pass the original Host (or set TRUSTED_PROXIES).
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in _SAME_ORIGIN_FETCH_SITES:
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


def has_body() -> bool:
    """Whether the request carries a body (a length over 0, or a chunked one)."""
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def guard() -> tuple[Response, int] | None:
    """Refuse a state-changing request from another origin (403) or with a body that is not JSON (415)."""
    if not changes_state():
        return None
    if not is_same_origin():
        log.warning(
            "refused cross-site %s %s (Origin %r, Sec-Fetch-Site %r)",
            request.method,
            request.path,
            request.origin,
            request.headers.get("Sec-Fetch-Site"),
        )
        return error_response(403, "cross-site request refused: only this site's own pages may send it")
    if has_body() and request.mimetype != JSON:
        return error_response(415, f"a request body must be {JSON}")
    return None


def init_app(app: Flask) -> None:
    """Guard every route of the app, those added later included."""
    app.before_request(guard)
