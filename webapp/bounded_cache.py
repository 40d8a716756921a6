"""A small thread-safe in-process cache, bounded in entries AND bytes, least recently used out.

Used for rendered page fragments (page_cache.py, short time-to-live, dropped by the commits they
concern) and for photo bytes (photos.py, no time-to-live: content-addressed bytes never change).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class BoundedCache(Generic[T]):
    """Values by key: at most ``max_entries`` of them totalling at most ``max_bytes``.

    ``ttl_seconds`` is how long a value may be served (None: until evicted; 0 turns the cache
    off). ``size_of`` measures a value in bytes; a value larger than ``max_bytes`` on its own is
    served but never kept. ``None`` means "nothing there" and is never kept either.
    """

    def __init__(self, *, max_entries: int, max_bytes: int, ttl_seconds: float | None = None,
                 size_of: Callable[[T], int] = sys.getsizeof,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("cache bounds must be zero or positive")
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._ttl = ttl_seconds
        self._size_of = size_of
        self._clock = clock
        # key -> (expires at or None, size in bytes, value); the first entry is the least recent.
        self._entries: OrderedDict[Hashable, tuple[float | None, int, T]] = OrderedDict()
        self._bytes = 0
        # Bumped by clear(): a load stores its value only if no clear() happened meanwhile.
        self._generation = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._ttl != 0 and self._max_entries > 0 and self._max_bytes > 0

    def get(self, key: Hashable) -> T | None:
        with self._lock:
            return self._get_locked(key)

    def get_or_load(self, key: Hashable, load: Callable[[], T | None]) -> T | None:
        if not self.enabled:
            return load()
        with self._lock:
            generation = self._generation
            value = self._get_locked(key)
        if value is not None:
            return value
        # Loaded outside the lock: a slow query must not hold up every other request thread.
        value = load()
        if value is not None:
            self.put(key, value, generation)
        return value

    def put(self, key: Hashable, value: T, generation: int | None = None) -> None:
        """Keep ``value``, evicting the least recently used, unless cleared since ``generation``."""
        if not self.enabled:
            return
        size = self._size_of(value)
        expires = None if self._ttl is None else self._clock() + self._ttl
        with self._lock:
            if generation is not None and generation != self._generation:
                return  # loaded before a clear(): it may hold data from before the change
            self._discard(key)
            if size > self._max_bytes:
                return
            while self._entries and (len(self._entries) >= self._max_entries
                                     or self._bytes + size > self._max_bytes):
                self._discard(next(iter(self._entries)))
            self._entries[key] = (expires, size, value)
            self._bytes += size

    def discard(self, key: Hashable) -> None:
        """Drop one value; a load of any key that overlaps this is not kept either."""
        with self._lock:
            self._generation += 1
            self._discard(key)

    def discard_where(self, stale: Callable[[T], bool]) -> None:
        """Drop every value for which ``stale(value)`` is true, as discard() does."""
        with self._lock:
            self._generation += 1
            for key in [key for key, entry in self._entries.items() if stale(entry[2])]:
                self._discard(key)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def _get_locked(self, key: Hashable) -> T | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, _size, value = entry
        if expires is not None and expires <= self._clock():
            self._discard(key)
            return None
        self._entries.move_to_end(key)
        return value

    def _discard(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1]
