"""Health endpoints: /healthz for App Service's health check, /readyz for dependencies."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, jsonify

from .db import check_database
from .storage import current_photo_store

logger = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    # Liveness only: checking PostgreSQL here would make App Service replace every healthy
    # instance during a database outage, which a restart cannot fix.
    return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}


@bp.get("/readyz")
def readyz():
    checks = {
        "database": _probe("database", check_database),
        "storage": _probe("storage", current_photo_store().check),
    }
    failed = [name for name, result in checks.items() if result != "ok"]
    body = {"status": "unavailable" if failed else "ready", "checks": checks, "failed": failed}
    response = jsonify(body)
    response.status_code = 503 if failed else 200
    response.headers["Cache-Control"] = "no-store"
    return response


def _probe(name: str, check: Callable[[], None]) -> str:
    try:
        check()
    except Exception as error:  # Any failure means "not ready"; the log has the details.
        logger.warning("Readiness check %s failed", name, exc_info=True)
        # Only the exception type: messages can name hosts and users, never worth leaking.
        return f"unavailable: {type(error).__name__}"
    return "ok"
