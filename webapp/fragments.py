"""Markup reused by what it shows, and pages filled in without rendering.

A piece of a page that depends only on the values it displays is rendered once per distinct set
of values, per process (the ``rendered_review`` and ``rendered_card`` filters).

This is not a page cache. The key is every value the markup shows, so a changed value is a new
key, never a stale piece; the pages still ask PostgreSQL for those values whenever the page
caches (page_cache.py) do not answer. What it saves is rendering: after a new review, the page
is read again, but only the new review is rendered; the others are as they were.

A page that is the same for every restaurant and visitor but for a few values is rendered once
per process with named slots for them (SlottedPage), then filled in by joining its UTF-8 bytes:
the response sends them as they are, without encoding the page again for every request.
"""

from __future__ import annotations

import functools
import secrets
import sys
from collections.abc import Callable, Hashable, Iterable
from typing import NamedTuple, TypeVar

from flask import Flask, current_app
from jinja2 import Environment
from markupsafe import Markup

from .bounded_cache import BoundedCache
from .models import MAX_RATING

# Distinct (average rating, review count) pairs whose stars stay rendered; a few KB in all.
RATING_STARS_MEMO_SIZE = 4096
T = TypeVar("T")
# Slot markers: letters, digits and hyphens, which escaping leaves as they are, and random per
# process, so no restaurant or review text can hold one.
_SLOT_MARKER = "slot-{name}-" + secrets.token_hex(16)
# Rendered reviews and restaurant cards kept per process: each is at most a few KB of HTML.
MEMO_MAX_ENTRIES = 8192
MEMO_MAX_BYTES = 16 * 1024 * 1024
# Search listings kept per process, apart: every search text is a new key, and visitors choose
# them, so they must not push out what everyone's pages share. A listing is about 12 KB.
SEARCH_MEMO_MAX_ENTRIES = 256
SEARCH_MEMO_MAX_BYTES = 4 * 1024 * 1024
# Filter name: (template, the name it gives the value).
MEMOISED_TEMPLATES = {
    "rendered_review": ("restaurants/_review.html", "review"),
    "rendered_card": ("restaurants/_card.html", "item"),
}


def init_app(app: Flask) -> None:
    app.add_template_filter(star_count, "star_count")
    app.add_template_filter(rating_stars_filter(app.jinja_env), "rating_stars")
    memo = app.extensions["fragment_memo"] = _markup_memo(MEMO_MAX_ENTRIES, MEMO_MAX_BYTES)
    app.extensions["search_memo"] = _markup_memo(SEARCH_MEMO_MAX_ENTRIES, SEARCH_MEMO_MAX_BYTES)
    for name, (template_name, value_name) in MEMOISED_TEMPLATES.items():
        app.add_template_filter(rendered_filter(app.jinja_env, template_name, value_name, memo),
                                name)


def _markup_memo(max_entries: int, max_bytes: int) -> BoundedCache:
    # The text shown is in the key as well as in the markup: both are counted.
    return BoundedCache(max_entries=max_entries, max_bytes=max_bytes,
                        size_of=lambda markup: 2 * fragment_size(markup))


def memoised(key: Hashable, render: Callable[[], T]) -> T:
    """What ``render`` returns for ``key``, rendered once per process while it stays in the
    memo. ``key`` must hold every value the markup shows (and what kind of markup it is)."""
    return current_app.extensions["fragment_memo"].get_or_load(key, render)


def memoised_search(key: Hashable, render: Callable[[], T]) -> T:
    """`memoised` for a search's markup, in a memo of its own (see SEARCH_MEMO_MAX_BYTES)."""
    return current_app.extensions["search_memo"].get_or_load(key, render)


def rendered_once(key: Hashable, render: Callable[[], T]) -> T:
    """What ``render`` returns, rendered once per app and kept in its extensions under ``key``:
    for markup that the templates and settings alone decide (page layouts, a blank form)."""
    extensions = current_app.extensions
    value = extensions.get(key)
    if value is None:
        value = extensions[key] = render()
    return value


def fragment_size(fragment: str | bytes | tuple) -> int:
    """Bytes held by a rendered fragment, or by a tuple of them (and of their ids), nested
    tuples included."""
    if isinstance(fragment, tuple):
        return sum(fragment_size(part) for part in fragment)
    return sys.getsizeof(fragment)


def rating_stars_filter(jinja_env: Environment) -> Callable[[object], Markup]:
    """The ``rating_stars`` filter: a restaurant's (or card's) stars and rating summary, as the
    ``stars`` macro of _macros.html renders them, each pair of numbers rendered once (the home
    page shows 20, and the macro cost more than the rest of a card)."""

    @functools.lru_cache(maxsize=RATING_STARS_MEMO_SIZE)
    def rendered(average_rating: float | None, review_count: int) -> Markup:
        macros = jinja_env.get_template("_macros.html").module
        return macros.stars(average_rating, review_count)

    def rating_stars(restaurant) -> Markup:
        return rendered(restaurant.average_rating, restaurant.review_count)

    return rating_stars


def rendered_filter(jinja_env: Environment, template_name: str, value_name: str,
                    memo: BoundedCache[Markup]) -> Callable[..., Markup]:
    """A filter rendering ``template_name`` with its value as ``value_name`` and the filter's
    keyword arguments (URL prefixes): a value and arguments seen before cost a lookup. The
    value must be hashable and hold everything the template shows of it."""

    def rendered(value: Hashable, **context: str) -> Markup:
        key = (template_name, value, tuple(context.items()))
        return memo.get_or_load(key, lambda: Markup(  # noqa: S704
            # Autoescaped like every .html template, so safe to embed.
            jinja_env.get_template(template_name).render({value_name: value, **context})))

    return rendered


def star_count(average_rating: float | None) -> int:
    """Whole stars to light for an average rating (rounded half up, 0 when unrated)."""
    if average_rating is None:
        return 0
    return max(0, min(MAX_RATING, int(average_rating + 0.5)))


class SlottedPage(NamedTuple):
    """Rendered HTML, encoded as UTF-8, with named holes (slots) for the values that differ by
    restaurant or by visitor. Filling a slot joins bytes: no template work, however large the
    page, and nothing to encode but the values filled in."""

    parts: tuple[bytes, ...]  # one more than slots: the HTML before, between and after them
    slots: tuple[str, ...]  # slot names, in the order they appear

    @classmethod
    def render(cls, render: Callable[..., str], names: Iterable[str]) -> SlottedPage:
        """Call ``render`` with a marker as each named value and split its HTML at them; each
        must appear exactly once, unescaped (give slots their values already as HTML)."""
        markers = {name: _SLOT_MARKER.format(name=name) for name in names}
        html = render(**markers).encode()
        found = []
        for name, marker in markers.items():
            encoded = marker.encode()
            if html.count(encoded) != 1:
                raise RuntimeError(f"the page shows slot {name} {html.count(encoded)} times, "
                                   "not once")
            found.append((html.index(encoded), name, encoded))
        parts, slots, start = [], [], 0
        for position, name, marker in sorted(found):
            parts.append(html[start:position])
            slots.append(name)
            start = position + len(marker)
        parts.append(html[start:])
        return cls(tuple(parts), tuple(slots))

    def fill(self, **values: str | bytes) -> SlottedPage:
        """The page with these slots filled with HTML (text, or bytes already encoded as
        UTF-8); the others stay slots."""
        unknown = values.keys() - set(self.slots)
        if unknown:
            raise KeyError(f"no slot named {', '.join(sorted(unknown))}")
        parts, slots, pieces = [], [], [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            if slot in values:
                value = values[slot]
                pieces += (value.encode() if isinstance(value, str) else value, part)
            else:
                parts.append(b"".join(pieces))
                slots.append(slot)
                pieces = [part]
        parts.append(b"".join(pieces))  # each part joined once, not once per slot filled in it
        return SlottedPage(tuple(parts), tuple(slots))

    def html(self, **values: str | bytes) -> bytes:
        """The page with every remaining slot filled, as UTF-8."""
        filled = self.fill(**values)
        if filled.slots:
            raise KeyError(f"slots left unfilled: {', '.join(filled.slots)}")
        return filled.parts[0]
