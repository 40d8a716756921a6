"""The per-request dependency budget: waiting on PostgreSQL or Blob Storage ends in time.

A request gets its deadline when it first calls PostgreSQL or Blob Storage: REQUEST_BUDGET_SECONDS
later, minus a reserve to render the 503 page. Reading the visitor's upload and checking the
photo come before that (a slow phone on a large photo is not a slow dependency). db.py and
storage.py size every outbound call to what is left; past it, DependencyTimeout becomes the 503
page (errors.py). Outside a request (migrations, the photo sweep) there is no deadline: only
each call's own timeouts apply.
"""

from __future__ import annotations

import time

from flask import g, has_request_context

from .config import current_settings

# Time kept back from the budget to render and send the 503 page once a dependency gave up.
ANSWER_RESERVE_SECONDS = 0.4
# The Entra token endpoint (App Service's local identity endpoint, or IMDS) answers in
# milliseconds; these bound it when it does not, inside the budget (see webapp/__init__.py).
# No retry: one attempt (2 s at worst) already takes most of a request's budget; the next
# request asks again.
CREDENTIAL_OPTIONS = {
    "connection_timeout": 1,
    "read_timeout": 1,
    "retry_total": 0,
    "retry_backoff_factor": 0.1,
    "retry_backoff_max": 0.2,
}


class DependencyTimeout(Exception):
    """The request's budget ran out before `dependency` answered (a 503, never a hang)."""

    def __init__(self, dependency: str) -> None:
        super().__init__(f"the request's dependency budget ran out waiting for {dependency}")
        self.dependency = dependency


def deadline() -> float | None:
    """The current request's deadline on the monotonic clock (set by the first call that asks
    for it), or None outside a request."""
    if not has_request_context():
        return None
    request_globals = g._get_current_object()  # one context lookup, not one per use
    end = request_globals.get("dependency_deadline")
    if end is None:
        budget = current_settings().request_budget_seconds
        end = request_globals.dependency_deadline = (
            time.monotonic() + budget - ANSWER_RESERVE_SECONDS)
    return end


def remaining(dependency: str) -> float | None:
    """Seconds left for `dependency`; raises DependencyTimeout when none are. None: no deadline."""
    end = deadline()
    if end is None:
        return None
    left = end - time.monotonic()
    if left <= 0:
        raise DependencyTimeout(dependency)
    return left
