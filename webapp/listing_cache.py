"""A short-lived, per-process cache of the home page's rendered listings.

The home page is the most visited page and the same for every visitor, so each process may
reuse a page's listing (restaurants with their ratings) for a couple of seconds instead of
asking PostgreSQL on every request. Whatever this process writes through its database session
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


class ListingCache:
    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get_or_load(self, key: Hashable, load: Callable[[], T]) -> T:
        if self._ttl <= 0:
            return load()
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        # Loaded outside the lock: a slow query must not hold up every other request thread.
        value = load()
        with self._lock:
            self._entries[key] = (now + self._ttl, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def init_app(app: Flask, ttl_seconds: float) -> None:
    cache = ListingCache(ttl_seconds)
    app.extensions["listing_cache"] = cache
    # Any change this process flushes to the database may alter a listing.
    event.listen(app.extensions["db_sessionmaker"], "after_flush",
                 lambda _session, _context: cache.clear())


def listing_cache() -> ListingCache:
    return current_app.extensions["listing_cache"]
