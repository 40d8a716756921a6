"""Short-lived, per-process caches of rendered page fragments that are the same for everyone.

The home page's listing (restaurants with their ratings) and a restaurant's details (its
description and reviews) are what visitors open most, and are identical for every visitor. Each
process may reuse them for a couple of seconds instead of asking PostgreSQL and rendering again.
Only these shared fragments are kept: the page around them (flash messages, the review form with
its CSRF token and errors) is rendered per request.

Whatever a worker process commits through its database session clears both caches at once, and
touches a stamp file in the instance's temp folder that every worker process of the instance
(gunicorn forks several) checks before reading its caches: a visitor who adds a restaurant or a
review sees it straight away, whichever worker answers next. Other instances catch up within the
time-to-live (HOME_PAGE_CACHE_SECONDS, DETAILS_PAGE_CACHE_SECONDS; 0 turns a cache off).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

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

logger = logging.getLogger(__name__)


def fragment_size(fragment: Markup | tuple[str, ...]) -> int:
    """Bytes held by a rendered fragment, or by a tuple of strings (title and fragment)."""
    if isinstance(fragment, tuple):
        return sum(sys.getsizeof(part) for part in fragment)
    return sys.getsizeof(fragment)


class ChangeStamp:
    """A file whose modification time tells this instance's worker processes "data changed".

    One stat() per check; the writer moves the time forward by at least a nanosecond, so two
    changes in quick succession are never mistaken for one.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._create()
        self._seen = self._read()

    def changed_elsewhere(self) -> bool:
        """Whether another process (or this one) marked a change since the last check."""
        current = self._read()
        with self._lock:
            if current == self._seen:
                return False
            self._seen = current
            return True

    def mark_changed(self) -> None:
        """Tell the other worker processes; runs after a commit, so it must never fail the
        request that saved: if the stamp cannot be written, their caches expire by their TTL."""
        try:
            self._create()
            stamp = max(time.time_ns(), (self._read() or 0) + 1)
            os.utime(self._path, ns=(stamp, stamp))
        except OSError as error:
            logger.warning("Page cache change stamp %s not written (%s); other worker "
                           "processes see the change when their cached pages expire",
                           self._path, type(error).__name__)
            return
        with self._lock:
            self._seen = stamp  # this process has already cleared its own caches

    def _create(self) -> None:
        # Opened for appending, not touched: touching would itself look like a change.
        with self._path.open("a"):
            pass

    def _read(self) -> int | None:
        try:
            return self._path.stat().st_mtime_ns
        except FileNotFoundError:  # removed by a temp-folder clean-up: recreated on next change
            return None


def default_stamp_path(app: Flask) -> Path:
    """One stamp per site data (database and container) and per user: per-test databases do not
    share one, and another user's file of the same name in the shared temp folder (which this
    user could not write) is never used."""
    engine_url = app.extensions["db_engine"].url.render_as_string(hide_password=True)
    site = f"{engine_url} {app.config.get('AZURE_STORAGE_CONTAINER', '')}"
    digest = hashlib.sha256(site.encode()).hexdigest()[:16]
    user = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    return Path(tempfile.gettempdir()) / f"restaurant-reviews-{user}-{digest}.changed"


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
    stamp = ChangeStamp(Path(app.config.get("PAGE_CACHE_STAMP_PATH") or default_stamp_path(app)))
    app.extensions["page_cache_stamp"] = stamp
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
            stamp.mark_changed()  # and tell this instance's other worker processes


def listing_cache() -> BoundedCache[Markup]:
    return _checked("listing_cache")


def details_cache() -> BoundedCache[tuple[str, Markup]]:
    return _checked("details_cache")


def _checked(name: str) -> BoundedCache:
    """The cache, emptied first if another worker process of this instance committed a change."""
    extensions = current_app.extensions
    if extensions["page_cache_stamp"].changed_elsewhere():
        extensions["listing_cache"].clear()
        extensions["details_cache"].clear()
    return extensions[name]
