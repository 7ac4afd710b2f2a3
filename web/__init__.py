"""The Flask app factory: config, Redis, blueprints, error handlers, background threads; wiring only."""

import logging
from pathlib import Path
from typing import Any

from flask import Flask

from web import config

ROOT = Path(__file__).resolve().parent.parent


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then `overrides` (tests).

    Raises:
        RuntimeError: a required setting (REDIS_URL, SECRET_KEY) is missing.
    """
    app = Flask(__name__, template_folder=str(ROOT / "templates"))
    app.config.from_mapping(config.from_environment())
    app.config.from_mapping(overrides or {})
    if not app.config.get("SECRET_KEY"):
        raise RuntimeError("SECRET_KEY is not set: export a long random value (make run generates one)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from web import (
        errors,
        events,
        extensions,
        group_urls,
        job_urls,
        jobs_api,
        openapi,
        operators,
        pages,
        reaper,
    )

    extensions.init_app(app)
    errors.init_app(app)
    events.init_app(app, listen=app.config["BACKGROUND_THREADS"])
    app.register_blueprint(jobs_api.bp)
    app.register_blueprint(job_urls.bp)
    app.register_blueprint(group_urls.bp)
    app.register_blueprint(openapi.bp)
    operators.init_app(app)
    app.register_blueprint(pages.bp)
    if app.config["BACKGROUND_THREADS"]:
        reaper.init_app(app)
    return app
