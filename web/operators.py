"""Operators: rq-dashboard at /rq behind basic auth, /healthz and /metrics; the only importer of rq_dashboard.

rq-dashboard ships no access control on purpose. We add ours per app, not on its module-global
blueprint (its `add_basic_auth` helper does that, so a second `create_app()` raises): a
`before_request` for the `rq_dashboard` blueprint checks HTTP basic auth. State-changing
requests from another origin are refused before that, by the app-wide guard (`web.guards`).
"""

import base64
import binascii
import hmac
import logging
import secrets

from flask import Blueprint, Flask, Response, current_app, request
from rq import Worker

from web.config import queue_names
from web.errors import error_response
from web.extensions import get_redis
from web.headers import content_security_policy
from web.metrics import render_metrics
from web.openapi_doc import answer, doc

log = logging.getLogger(__name__)

bp = Blueprint("operators", __name__)

DASHBOARD_PREFIX = "/rq"
DASHBOARD_REALM = 'Basic realm="rq-dashboard", charset="UTF-8"'
# rq-dashboard 0.9.0 renders job descriptions, results, meta and errors unescaped (underscore
# templates' <%= %>), so stored markup would run in the operator's session. Under this policy no
# inline event handler and no injected script runs: scripts come from the app itself, or are
# the dashboard's one inline block, which gets this response's nonce. The dashboard compiles
# its templates at run time (`_.template`, new Function): 'unsafe-eval'. Its markup carries
# style attributes: 'unsafe-inline' for styles only.
DASHBOARD_POLICY = content_security_policy(
    script_src="'self' 'nonce-{nonce}' 'unsafe-eval'", style_src="'self' 'unsafe-inline'"
)
# The opening tag of the dashboard's own inline script (base.html); script tags with a src, and
# its underscore templates (type="text/template"), differ. Jinja escapes any `<` it renders, so
# stored data cannot produce this tag.
_INLINE_SCRIPT = '<script type="text/javascript">'


@bp.get("/healthz")
@doc({200: answer("healthy", "Health"), 503: "Unavailable"})
def healthz():
    """200 with Redis reachable and live workers per configured queue; 503 JSON when Redis is down."""
    connection = get_redis()
    connection.ping()
    names = queue_names(current_app.config["QUEUES"])
    workers = {name: 0 for name in names}
    for worker in Worker.all(connection=connection):
        for name in worker.queue_names():
            if name in workers:
                workers[name] += 1
    return {"status": "ok", "redis": "ok", "workers": workers}


@bp.get("/metrics")
@doc(
    {200: {"description": "Prometheus exposition format", "content": {"text/plain": {}}}, 503: "Unavailable"}
)
def metrics():
    """Prometheus text: queue depths, jobs by state, workers, job durations (read from Redis now)."""
    body, content_type = render_metrics(get_redis())
    return Response(body, content_type=content_type)


def init_app(app: Flask) -> None:
    """Register /healthz and /metrics, and mount the dashboard when credentials are set."""
    app.register_blueprint(bp)
    if app.config.get("RQ_DASHBOARD_USERNAME") and app.config.get("RQ_DASHBOARD_PASSWORD"):
        mount_dashboard(app)
    else:
        log.info("rq-dashboard is off: set RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD to mount it")


def mount_dashboard(app: Flask) -> None:
    """Mount rq-dashboard at /rq on the app's own Redis client, behind our checks."""
    import rq_dashboard

    app.config.from_object(rq_dashboard.default_settings)
    # Shown in the dashboard's instance list only (no password); it never connects with it.
    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", (app.extensions["rq"]["where"],))
    # The dashboard reads `app.redis_conn`. Its own before_request would build a new client (no
    # timeouts, a pool of its own) on every request with an instance number: we drop it and
    # give the dashboard the process's one client, so an outage answers 503 like any route.
    app.redis_conn = get_redis_of(app)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=DASHBOARD_PREFIX)
    checks = app.before_request_funcs.setdefault(rq_dashboard.blueprint.name, [])
    checks[:] = [check for check in checks if getattr(check, "__name__", "") != "push_rq_connection"]
    checks.insert(0, guard_dashboard)
    app.after_request_funcs.setdefault(rq_dashboard.blueprint.name, []).append(secure_dashboard_response)
    log.info(
        "rq-dashboard mounted at %s/ (basic auth as %s)",
        DASHBOARD_PREFIX,
        app.config["RQ_DASHBOARD_USERNAME"],
    )


def get_redis_of(app: Flask):
    """The Redis client that `web.extensions` built for this app."""
    return app.extensions["rq"]["redis"]


def guard_dashboard() -> tuple[Response, int] | None:
    """Answer 401 without the right credentials; 404 for a Redis instance other than 0 (we configure one)."""
    if not is_authorized(request.headers.get("Authorization", "")):
        return error_response(
            401, "the dashboard needs a user name and password", {"WWW-Authenticate": DASHBOARD_REALM}
        )
    if request.view_args and request.view_args.get("instance_number", 0) != 0:
        return error_response(404, "only one Redis instance is configured")
    return None


def secure_dashboard_response(response: Response) -> Response:
    """Give a dashboard response its CSP, nonce-stamping the dashboard's own inline script; nosniff."""
    nonce = secrets.token_urlsafe(16)
    if response.mimetype == "text/html" and not response.direct_passthrough:
        html = response.get_data(as_text=True)
        response.set_data(html.replace(_INLINE_SCRIPT, f'<script type="text/javascript" nonce="{nonce}">'))
    response.headers["Content-Security-Policy"] = DASHBOARD_POLICY.format(nonce=nonce)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def is_authorized(header: str) -> bool:
    """Whether an Authorization header carries the configured dashboard credentials."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    config = current_app.config
    # Compare both parts every time, so the answer's timing does not tell which one was wrong.
    user_ok = hmac.compare_digest(user.encode(), str(config["RQ_DASHBOARD_USERNAME"]).encode())
    password_ok = hmac.compare_digest(password.encode(), str(config["RQ_DASHBOARD_PASSWORD"]).encode())
    return bool(sep) and user_ok and password_ok
