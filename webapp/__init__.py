"""The restaurant review site. `create_app()` is the application factory.

gunicorn: `gunicorn 'webapp:create_app()'`; migrations: `flask --app webapp migrate`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import flask
from azure.core.credentials import TokenCredential

from . import (
    budget,
    db,
    errors,
    forms,
    fragments,
    health,
    images,
    page_cache,
    photos,
    restaurants,
    reviews,
    security,
    sweep,
)
from .config import ConfigError, RecordingEnvironment, Settings, request_body_limit
from .storage import PhotoStore
from .telemetry import configure_telemetry


def create_app(
    test_config: Mapping[str, object] | None = None,
    *,
    credential: TokenCredential | None = None,
) -> flask.Flask:
    """Build the app from environment variables, or only from ``test_config`` when given.

    ``test_config`` holds the same keys as the environment contract (SECRET_KEY, DATABASE_URL,
    tuning knobs, ...) plus any setting Flask or Flask-WTF reads itself (TESTING,
    MAX_FORM_PARTS, ...); any other key is refused, so a misspelt knob cannot go unnoticed.
    ``credential`` replaces DefaultAzureCredential.
    """
    environment = os.environ if test_config is None else RecordingEnvironment(test_config)
    settings = Settings.from_mapping(environment)
    configure_telemetry(settings.appinsights_connection_string)
    # flask.Flask looked up now, not imported at module load: Azure Monitor swaps in an
    # instrumented subclass during configure_telemetry.
    app = flask.Flask(__name__)
    if test_config is not None:
        app.config.update(_flask_settings(app, test_config, environment.read))
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=request_body_limit(settings.max_photo_bytes),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.extensions["settings"] = settings
    app.jinja_env.globals["settings"] = settings

    shared_credential = _shared_credential(app, credential)
    db.init_app(app, settings, shared_credential)
    images.init_app(app, settings.photo_decode_memory_bytes, settings.photo_decode_wait_seconds)
    page_cache.init_app(app, settings.page_cache, settings.storage.container)
    app.extensions["photo_store"] = PhotoStore.from_settings(
        settings.storage, settings.storage_client, shared_credential
    )
    forms.init_app(app)
    security.init_app(app, settings.trusted_proxy_hops)
    errors.init_app(app)
    sweep.init_app(app)
    photos.init_app(app, settings.photo_cache)
    for blueprint in (restaurants.bp, reviews.bp, photos.bp, health.bp):
        app.register_blueprint(blueprint)
    fragments.init_app(app)
    # Keep the served HTML free of the blank lines template tags would leave behind.
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    return app


def _flask_settings(
    app: flask.Flask, test_config: Mapping[str, object], read_by_settings: set[str]
) -> dict[str, object]:
    """The keys of test_config that Flask or Flask-WTF read from app.config; refuses the rest."""
    rest = {key: value for key, value in test_config.items() if key not in read_by_settings}
    unknown = sorted(key for key in rest if key not in app.config and not key.startswith("WTF_"))
    if unknown:
        raise ConfigError(f"Unknown settings: {', '.join(unknown)} (neither webapp/config.py "
                          "nor Flask reads them).")
    return rest


def _shared_credential(
    app: flask.Flask, injected: TokenCredential | None
) -> Callable[[], TokenCredential]:
    """One credential for PostgreSQL and Blob Storage, created only if either needs it."""

    def credential() -> TokenCredential:
        if "azure_credential" not in app.extensions:
            app.extensions["azure_credential"] = injected or _default_credential()
        return app.extensions["azure_credential"]

    return credential


def _default_credential() -> TokenCredential:
    # Imported on demand: the local shortcut (URL with password + connection string) never
    # needs azure-identity at all.
    from azure.identity import DefaultAzureCredential

    # Bounded like every other dependency: a token fetch happens inside a request when a new
    # PostgreSQL connection or a Blob Storage call needs one.
    return DefaultAzureCredential(**budget.CREDENTIAL_OPTIONS)
