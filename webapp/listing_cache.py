"""A short-lived, per-process cache of the home page's rendered listings.

The home page is the most visited page and the same for every visitor, so each process may
reuse a page's listing (restaurants with their ratings) for a couple of seconds instead of
asking PostgreSQL on every request. Whatever this process commits through its database session
clears the cache at once, so a visitor who adds a restaurant or a review sees it straight away;
other instances catch up within the time-to-live. HOME_PAGE_CACHE_SECONDS=0 turns it off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import TypeVar

from flask import Flask, current_app
from sqlalchemy import event

T = TypeVar("T")

# Pages are few in practice; the bound keeps probes of many ?page=N values from growing memory.
MAX_ENTRIES = 64
_SESSION_CHANGED = "listing_cache_changed"  # session.info key: this transaction flushed


class ListingCache:
    """Values by key for ``ttl_seconds``, at most ``max_entries`` of them (oldest evicted).

    ``None`` means "nothing there" (a page past the last one) and is never kept. A load that
    overlaps ``clear()`` is not kept either: it may have read data from before the change.
    """

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES):
        self._ttl = ttl_seconds
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, object]] = {}
        # Bumped by clear(): a load stores its value only if no clear() happened meanwhile.
        self._generation = 0
        self._lock = threading.Lock()

    def get_or_load(self, key: Hashable, load: Callable[[], T | None]) -> T | None:
        if self._ttl <= 0:
            return load()
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            generation = self._generation
        if entry is not None and entry[0] > now:
            return entry[1]
        # Loaded outside the lock: a slow query must not hold up every other request thread.
        value = load()
        if value is not None:
            self._store(key, (now + self._ttl, value), generation)
        return value

    def _store(self, key: Hashable, entry: tuple[float, object], generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self._entries.pop(key, None)  # re-inserted last: dicts keep insertion order
            while len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = entry

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def init_app(app: Flask, ttl_seconds: float) -> None:
    cache = ListingCache(ttl_seconds)
    app.extensions["listing_cache"] = cache
    sessions = app.extensions["db_sessionmaker"]

    # Any change this process commits may alter a listing. Cleared on commit, not on flush:
    # until then other requests still read the old rows and could cache them again.
    @event.listens_for(sessions, "after_flush")
    def remember_change(session, _context) -> None:
        session.info[_SESSION_CHANGED] = True

    @event.listens_for(sessions, "after_commit")
    def clear_after_change(session) -> None:
        if session.info.pop(_SESSION_CHANGED, False):
            cache.clear()


def listing_cache() -> ListingCache:
    return current_app.extensions["listing_cache"]
