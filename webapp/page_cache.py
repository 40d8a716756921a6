"""Short-lived, per-process caches of rendered page fragments that are the same for everyone.

The home page's listing (restaurants with their ratings) and a restaurant's details (its
description and reviews) are what visitors open most, and are identical for every visitor. Each
process may reuse them for a couple of seconds instead of asking PostgreSQL and rendering again.
Only these shared fragments are kept: the page around them (flash messages, the review form with
its submission token and errors) is rendered per request.

A commit drops only what it changed: a new review, its restaurant's details and the listing pages
it appears on (and the pages sorted by rating or number of reviews, where it may move); a new
restaurant, the listing pages. The committing process drops them at once and appends the change
to a log file in the instance's temp folder, which every worker process of the instance (gunicorn
forks several) reads up to its end before using its caches: a visitor who adds a restaurant or a
review sees it straight away, whichever worker answers next. Other instances catch up within the
time-to-live (HOME_PAGE_CACHE_SECONDS, DETAILS_PAGE_CACHE_SECONDS; 0 turns a cache off).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import mmap
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from flask import Flask, current_app
from sqlalchemy import event

from . import db
from .bounded_cache import BoundedCache
from .config import PageCacheSettings
from .fragments import SlottedPage, fragment_size
from .models import Restaurant, Review

# About 60,000 changes; then the log starts afresh and every worker empties its caches once.
CHANGE_LOG_MAX_BYTES = 1024 * 1024
# The shared change counter: a little-endian unsigned count, bumped after each append.
COUNTER_BYTES = 8
_SESSION_CHANGES = "page_cache_changes"  # session.info key: what this transaction flushed

# What a commit changed, as the log records it: (kind, restaurant id).
REVIEW, RESTAURANT, EVERYTHING = "review", "restaurant", "everything"
Change = tuple[str, int]
_UNKNOWN: Change = (EVERYTHING, 0)

logger = logging.getLogger(__name__)


class CachedListing(NamedTuple):
    """A rendered listing (or whole home page), with what a change needs to know about it."""

    html: bytes  # UTF-8
    sort: str
    restaurant_ids: frozenset[int]


class ChangeLog:
    """An append-only file of the changes this instance's worker processes committed.

    Each process keeps its position in it. Appends are single O_APPEND writes of whole lines
    under a lock file, so they never interleave, each followed by a bump of a counter in a small
    file that every process maps into its memory: learning that nothing changed is a read of 8
    bytes, with no system call (a stat() per request released the GIL, and under load each
    release hands it to another thread). The log is started afresh (a new file, so a new inode)
    only under that lock: a process that finds another file than the one it was reading drops
    everything, having possibly missed the last changes of the old one.

    Where the counter cannot be mapped, every read costs a stat() instead. A log or counter
    removed by a temp-folder clean-up is noticed at the next change; a process started after
    the counter's removal maps a new one, and it and the older processes then see each other's
    changes only when their cached pages expire, as without the log (so does a process idle
    through two fresh starts that meets its old inode number again).
    """

    def __init__(self, path: Path, max_bytes: int = CHANGE_LOG_MAX_BYTES) -> None:
        self._path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        # Created now, so that the first change is not taken for a new file; record() logs
        # why, if that fails.
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        self._counter = _map_counter(path.with_name(path.name + ".count"))
        self._seen = self._count()
        self._file_id, self._offset = self._end()

    def record(self, changes: Iterable[Change]) -> None:
        """Tell the other worker processes; runs after a commit, so it must never fail the
        request that saved: if the log cannot be written, their caches expire by their TTL."""
        lines = "".join(f"{kind} {restaurant_id}\n" for kind, restaurant_id in changes)
        try:
            with self._lock_path.open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
                if self._size() >= self._max_bytes:
                    self._start_afresh()
                descriptor = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(descriptor, lines.encode())
                finally:
                    os.close(descriptor)
                self._bump()  # after the write: a process that sees it finds the lines
        except OSError as error:
            logger.warning("Page cache change log %s not written (%s); other worker processes "
                           "see the change when their cached pages expire",
                           self._path, type(error).__name__)

    def changes_since_last_read(self) -> list[Change]:
        """What was committed (here or by another process) since the last call; a list holding
        (EVERYTHING, 0) when that cannot be known."""
        count = self._count()  # before the file: a change made after it is read next time
        if count is not None and count == self._seen:
            return []
        file_id, size = self._end()
        with self._lock:
            self._seen = count
            if (file_id, size) == (self._file_id, self._offset):
                return []
            if file_id != self._file_id or size < self._offset:
                self._file_id, self._offset = file_id, size
                return [_UNKNOWN]
            try:
                with self._path.open("rb") as log:
                    log.seek(self._offset)
                    data = log.read(size - self._offset)
            except OSError:
                self._file_id, self._offset = file_id, size
                return [_UNKNOWN]
            complete = data[:data.rfind(b"\n") + 1]  # a line being written is read next time
            self._offset += len(complete)
        return [_parse(line) for line in complete.decode(errors="replace").splitlines()]

    def _count(self) -> int | None:
        """The changes appended so far by every process (None: no counter to read)."""
        if self._counter is None:
            return None
        return int.from_bytes(self._counter[:COUNTER_BYTES], "little")

    def _bump(self) -> None:
        count = self._count()
        if count is not None:
            self._counter[:COUNTER_BYTES] = (count + 1).to_bytes(COUNTER_BYTES, "little")

    def _start_afresh(self) -> None:
        fresh = self._path.with_name(self._path.name + ".new")
        fresh.write_bytes(b"")
        fresh.chmod(0o600)
        os.replace(fresh, self._path)

    def _end(self) -> tuple[tuple[int, int] | None, int]:
        try:
            status = self._path.stat()
        except FileNotFoundError:  # removed by a temp-folder clean-up: recreated on next change
            return None, 0
        return (status.st_dev, status.st_ino), status.st_size

    def _size(self) -> int:
        return self._end()[1]


def _map_counter(path: Path) -> mmap.mmap | None:
    """The shared change counter at ``path``, mapped into this process's memory (created
    zeroed if missing), or None if it cannot be."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(descriptor).st_size < COUNTER_BYTES:
                os.ftruncate(descriptor, COUNTER_BYTES)  # zeros; a no-op once it has its size
            return mmap.mmap(descriptor, COUNTER_BYTES)
        finally:
            os.close(descriptor)
    except (OSError, ValueError) as error:
        logger.warning("Page cache change counter %s not mapped (%s): each request checks "
                       "the change log with a stat()", path, type(error).__name__)
        return None


def _parse(line: str) -> Change:
    kind, _, number = line.partition(" ")
    if kind in (REVIEW, RESTAURANT) and number.isdigit():
        return kind, int(number)
    return _UNKNOWN


def default_log_path(app: Flask, container: str) -> Path:
    """One log per site data (database and container) and per user: per-test databases do not
    share one, and another user's file of the same name in the shared temp folder (which this
    user could not write) is never used."""
    engine_url = db.get_engine(app).url.render_as_string(hide_password=True)
    site = f"{engine_url} {container}"
    digest = hashlib.sha256(site.encode()).hexdigest()[:16]
    user = os.getuid()
    return Path(tempfile.gettempdir()) / f"restaurant-reviews-{user}-{digest}.changes"


def init_app(app: Flask, settings: PageCacheSettings, container: str) -> None:
    """``container`` (the photos' blob container) names the site's data in the default log path."""
    caches = {
        "listing_cache": BoundedCache(
            ttl_seconds=settings.listing_ttl_seconds, size_of=fragment_size,
            max_entries=settings.listing_max_entries, max_bytes=settings.listing_max_bytes),
        "details_cache": BoundedCache(
            ttl_seconds=settings.details_ttl_seconds, size_of=fragment_size,
            max_entries=settings.details_max_entries, max_bytes=settings.details_max_bytes),
    }
    app.extensions.update(caches)
    log = ChangeLog(settings.log_path or default_log_path(app, container))
    app.extensions["page_cache_log"] = log
    sessions = app.extensions["db_sessionmaker"]

    # Dropped on commit, not on flush: until then other requests still read the old rows and
    # could cache them again (a load that overlaps the drop is not kept, see bounded_cache.py).
    def remember_changes(session) -> None:
        session.info.setdefault(_SESSION_CHANGES, set()).update(flushed_changes(session))

    db.on_flush(app, remember_changes)

    @event.listens_for(sessions, "after_commit")
    def drop_what_changed(session) -> None:
        changes = session.info.pop(_SESSION_CHANGES, None)
        if changes:
            forget(changes, caches["listing_cache"], caches["details_cache"])
            log.record(changes)  # and tell this instance's other worker processes

    @event.listens_for(sessions, "after_rollback")
    def nothing_changed(session) -> None:
        session.info.pop(_SESSION_CHANGES, None)


def flushed_changes(session) -> set[Change]:
    """What a flush changed, as far as the pages are concerned (it runs before the session
    forgets which objects were new)."""
    if session.dirty or session.deleted:
        return {_UNKNOWN}  # the site only inserts; anything else drops everything
    changes = set()
    for item in session.new:
        if isinstance(item, Review):
            changes.add((REVIEW, item.restaurant_id))
        elif isinstance(item, Restaurant):
            changes.add((RESTAURANT, item.id))
        else:
            changes.add(_UNKNOWN)
    return changes


def forget(changes: Iterable[Change], listing: BoundedCache[CachedListing],
           details: BoundedCache) -> None:
    """Drop the cached pages the changes made stale, and only those."""
    for kind, restaurant_id in changes:
        if kind == REVIEW:
            details.discard(restaurant_id)
            # Its stars and count change where it is listed; by rating or number of reviews
            # it may also move to another page, shifting the ones in between.
            listing.discard_where(lambda entry, changed=restaurant_id: (
                entry.sort != "name" or changed in entry.restaurant_ids))
        elif kind == RESTAURANT:
            listing.clear()  # a new name shifts every page after its own
        else:
            listing.clear()
            details.clear()


def listing_cache() -> BoundedCache[CachedListing]:
    return _checked("listing_cache")


def details_cache() -> BoundedCache[SlottedPage]:
    """Each restaurant's details page with a blank form, its visitor's slots open."""
    return _checked("details_cache")


def _checked(name: str) -> BoundedCache:
    """The cache, after dropping what this instance's worker processes changed meanwhile."""
    extensions = current_app.extensions
    changes = extensions["page_cache_log"].changes_since_last_read()
    if changes:
        forget(changes, extensions["listing_cache"], extensions["details_cache"])
    return extensions[name]
