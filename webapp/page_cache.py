"""Short-lived, per-process caches of rendered page fragments that are the same for everyone.

The home page's listing (restaurants with their ratings) and a restaurant's details (its
description and reviews) are what visitors open most, and are identical for every visitor. Each
process may reuse them for a couple of seconds instead of asking PostgreSQL and rendering again.
Only these shared fragments are kept: the page around them (flash messages, the review form with
its CSRF token and errors) is rendered per request.

Whatever this process commits through its database session clears both caches at once, so a
visitor who adds a restaurant or a review sees it straight away; other instances catch up within
the time-to-live (HOME_PAGE_CACHE_SECONDS, DETAILS_PAGE_CACHE_SECONDS; 0 turns a cache off).
"""

from __future__ import annotations

import sys

from flask import Flask, current_app
from markupsafe import Markup
from sqlalchemy import event

from .bounded_cache import BoundedCache

# Pages are few in practice; the bounds keep probes of many ?page=N values from growing memory.
LISTING_MAX_ENTRIES = 64
LISTING_MAX_BYTES = 4 * 1024 * 1024
# One entry per restaurant visited within the time-to-live; a page of 20 reviews is ~10 KB.
DETAILS_MAX_ENTRIES = 512
DETAILS_MAX_BYTES = 16 * 1024 * 1024
_SESSION_CHANGED = "page_cache_changed"  # session.info key: this transaction flushed


def fragment_size(fragment: Markup | tuple[str, ...]) -> int:
    """Bytes held by a rendered fragment, or by a tuple of strings (title and fragment)."""
    if isinstance(fragment, tuple):
        return sum(sys.getsizeof(part) for part in fragment)
    return sys.getsizeof(fragment)


def init_app(app: Flask, listing_ttl_seconds: float, details_ttl_seconds: float) -> None:
    caches = {
        "listing_cache": BoundedCache(
            ttl_seconds=listing_ttl_seconds, size_of=fragment_size,
            max_entries=app.config.get("LISTING_CACHE_MAX_ENTRIES", LISTING_MAX_ENTRIES),
            max_bytes=app.config.get("LISTING_CACHE_MAX_BYTES", LISTING_MAX_BYTES)),
        "details_cache": BoundedCache(
            ttl_seconds=details_ttl_seconds, size_of=fragment_size,
            max_entries=app.config.get("DETAILS_CACHE_MAX_ENTRIES", DETAILS_MAX_ENTRIES),
            max_bytes=app.config.get("DETAILS_CACHE_MAX_BYTES", DETAILS_MAX_BYTES)),
    }
    app.extensions.update(caches)
    sessions = app.extensions["db_sessionmaker"]

    # Any change this process commits may alter a listing or a restaurant's reviews. Cleared on
    # commit, not on flush: until then other requests still read the old rows and could cache
    # them again (a load that overlaps the clear is not kept, see bounded_cache.py).
    @event.listens_for(sessions, "after_flush")
    def remember_change(session, _context) -> None:
        session.info[_SESSION_CHANGED] = True

    @event.listens_for(sessions, "after_commit")
    def clear_after_change(session) -> None:
        if session.info.pop(_SESSION_CHANGED, False):
            for cache in caches.values():
                cache.clear()


def listing_cache() -> BoundedCache[Markup]:
    return current_app.extensions["listing_cache"]


def details_cache() -> BoundedCache[tuple[str, Markup]]:
    return current_app.extensions["details_cache"]
