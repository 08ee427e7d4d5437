"""The receiver: the Flask app Salesforce talks to.

``create_app()`` builds it (gunicorn loads ``services.receiver.wsgi:app``).
One blueprint per caller type: ``outbound`` (SOAP Outbound Messages),
``callouts`` (JSON from Apex and Flow, plus job status), ``applink`` (Heroku AppLink
invocations through its service mesh), ``openapi`` (the
External Services spec) and ``health``. Every view does the same four steps:
authenticate, validate, enqueue, answer; the shared steps live in
``auth.py`` and ``intake.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from services.logs import configure_logging
from services.settings import Settings

__all__ = ["create_app"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Create and configure the receiver.

    Args:
        config: Test hook, as in Flask's tutorial. ``OFFLOAD_SETTINGS`` may hold a
            ready :class:`~services.settings.Settings`; ``OFFLOAD_REDIS`` a Redis
            client to use; other keys update ``app.config``. Without it, settings
            come from the environment and are validated for the ``web`` role.
    """
    from services.receiver import applink, callouts, dashboard, errors, health, metrics, openapi, outbound, runtime

    config = dict(config or {})
    settings = config.pop("OFFLOAD_SETTINGS", None)
    if settings is None:
        settings = Settings.from_env()
        settings.require("web")
        configure_logging(settings.log_format, settings.log_level)
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    redis_client = config.pop("OFFLOAD_REDIS", None)
    app.config.update(config)
    runtime.init_app(app, settings, redis_client)
    errors.init_app(app)
    metrics.init_app(app)  # first, so the dashboard's refusals are timed too
    dashboard.init_app(app, settings)
    app.register_blueprint(health.bp)
    app.register_blueprint(callouts.bp)
    app.register_blueprint(outbound.bp)
    app.register_blueprint(applink.bp)
    app.register_blueprint(openapi.bp)
    return app
