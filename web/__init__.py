"""The Flask app factory: config, Redis, blueprints, error handlers, background threads; wiring only."""

import logging
import secrets
from pathlib import Path
from typing import Any

import click
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from web import config
from web.encoding import PayloadJSONProvider

ROOT = Path(__file__).resolve().parent.parent


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then `overrides` (tests).

    Raises:
        RuntimeError: a required setting (SECRET_KEY, REDIS_URL or REDIS_SENTINELS) is missing or bad,
            or no sentinel answers.
    """
    app = Flask(__name__, template_folder=str(ROOT / "templates"))
    app.json = PayloadJSONProvider(app)
    app.config.from_mapping(config.from_environment())
    app.config.from_mapping(overrides or {})
    command = click.get_current_context(silent=True)
    if command is not None and command.info_name != "run":
        # `flask --app web tokens ...`: a one-off command starts no background thread.
        app.config["BACKGROUND_THREADS"] = False
    if not app.config.get("SECRET_KEY"):
        if command is None:
            raise RuntimeError("SECRET_KEY is not set: export a long random value (make run generates one)")
        # `flask --app web tokens ...` signs no cookie: it needs only where Redis is.
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if app.config["TRUSTED_PROXIES"]:
        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)

    from web import (
        auth,
        browser_events,
        cli,
        errors,
        events,
        extensions,
        group_urls,
        guards,
        headers,
        job_urls,
        jobs_api,
        limits,
        openapi,
        operators,
        pages,
        reaper,
    )

    extensions.init_app(app)
    errors.init_app(app)
    auth.init_app(app)
    guards.init_app(app)
    headers.init_app(app)
    limits.init_app(app)
    cli.init_app(app)
    events.init_app(app, listen=app.config["BACKGROUND_THREADS"])
    app.register_blueprint(jobs_api.bp)
    app.register_blueprint(job_urls.bp)
    app.register_blueprint(group_urls.bp)
    app.register_blueprint(browser_events.bp)
    app.register_blueprint(openapi.bp)
    operators.init_app(app)
    app.register_blueprint(pages.bp)
    if app.config["BACKGROUND_THREADS"]:
        reaper.init_app(app)
    return app
