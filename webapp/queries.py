"""Read queries shared by the views: one statement per page, plain rows, no ORM state.

Each is compiled once and run by db.read_rows: one round trip, outside a transaction, its rows
plain tuples read by position (the positions are those of the statement's columns).
"""

from __future__ import annotations

import functools
import operator
import re
from dataclasses import dataclass, fields
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import (
    Dialect,
    Engine,
    Integer,
    Select,
    Text,
    bindparam,
    func,
    literal_column,
    select,
)

from .db import PreparedSelect, read_rows
from .models import MAX_RATING, Restaurant, Review

# The listing's orders; name and id last, so equal values keep a stable order across pages.
# Each has an index in the same order (webapp/models.py).
SORT_ORDERS = {
    "name": (Restaurant.name, Restaurant.id),
    "rating": (Restaurant.average_rating.desc().nulls_last(), Restaurant.name, Restaurant.id),
    "reviews": (Restaurant.review_count.desc(), Restaurant.name, Restaurant.id),
}
DEFAULT_SORT = "name"
# Pages reach this many restaurants in any order, no further: an OFFSET costs as many index
# entries as it skips, and counting every match as many rows. Past them, a search narrows down.
LISTED_MAX = 10_000
_LIKE_SPECIAL = re.compile(r"([\\%_])")
POSTED_ON_FORMAT = "%d %b %Y"
# A review's rating as MAX_RATING stars, lit then unlit, by rating.
RATING_STARS = tuple("★" * lit + "☆" * (MAX_RATING - lit) for lit in range(MAX_RATING + 1))


class ReviewItem(NamedTuple):
    """One review as the details page shows it: the row's values, no ORM state to track.

    The displayed forms of its time and rating are worked out only when shown: a review is
    rendered once per process (fragments.py), so most reads never need them."""

    reviewer_name: str
    rating: int
    review_text: str
    photo_name: str | None
    created_at: datetime
    photo_width: int | None
    photo_height: int | None

    @property
    def posted_at(self) -> str:
        """created_at in ISO 8601, for <time datetime>."""
        return self.created_at.isoformat()

    @property
    def posted_on(self) -> str:
        """The day, as visitors read it."""
        return self.created_at.strftime(POSTED_ON_FORMAT)

    @property
    def stars(self) -> str:
        """The rating as lit and unlit stars."""
        return RATING_STARS[self.rating]


@dataclass(frozen=True)
class RestaurantDetails:
    """A restaurant with its reviews as the details page shows them.

    Equal only when every value is (the markup memo's key, fragments.py), but hashed on a few:
    hashing every review's text costs more than finding the page in the memo. Details that
    differ elsewhere share a hash, never an entry."""

    id: int
    name: str
    street_address: str
    description: str
    average_rating: float | None
    review_count: int
    reviews: tuple[ReviewItem, ...]

    def __hash__(self) -> int:
        newest = self.reviews[0].created_at if self.reviews else None
        return hash((self.id, self.review_count, self.average_rating, newest))


class RestaurantCard(NamedTuple):
    """What the home page shows of one restaurant: plain values, no ORM state to track."""

    id: int
    name: str
    street_address: str
    average_rating: float | None
    review_count: int


@dataclass(frozen=True)
class ListingQuery:
    """What the home page lists: names containing ``search`` (all when empty), in ``sort``
    order (a SORT_ORDERS key), page ``page`` of ``per_page``."""

    search: str
    sort: str
    page: int
    per_page: int


@dataclass(frozen=True)
class RestaurantPage:
    items: tuple[RestaurantCard, ...]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-min(self.total, LISTED_MAX) // self.per_page))

    @property
    def beyond_the_pages(self) -> bool:
        """More match than the pages reach (``total`` then stops counting past LISTED_MAX)."""
        return self.total > LISTED_MAX

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def restaurant_page(engine: Engine, query: ListingQuery) -> RestaurantPage:
    """One page of restaurants with their average rating and review count."""
    parameters = {"limit": query.per_page, "offset": (query.page - 1) * query.per_page}
    if query.search:
        parameters["search"] = search_parameter(query.search)
    rows = read_rows(engine, listing_statement(engine.dialect, query.sort, bool(query.search)),
                     parameters)
    items = tuple(RestaurantCard(*row[:_LISTING_TOTAL]) for row in rows)
    if rows:
        total = rows[0][_LISTING_TOTAL]
    else:  # past the last page: the count alone, for the 404 and "Page n of m"
        total = read_rows(engine, _count_sql(engine.dialect, bool(query.search)),
                          parameters)[0][0]
    return RestaurantPage(items=items, page=query.page, per_page=query.per_page, total=total)


# The listing's columns: a RestaurantCard's, then the total.
_LISTING_TOTAL = len(RestaurantCard._fields)


@functools.cache
def listing_sql(dialect: Dialect, sort: str, searching: bool) -> str:
    """The listing's statement for one order, with or without a search: compiled once.

    A single statement on the restaurants table alone: the aggregates are its own columns
    (kept by a trigger), the total a scalar subquery counting the matching rows up to one past
    LISTED_MAX. Parameters: limit, offset and (searching) search.
    """
    matching = _matching(searching)
    total = _bounded_count(matching).scalar_subquery()
    statement = (
        select(Restaurant.id, Restaurant.name, Restaurant.street_address,
               Restaurant.average_rating, Restaurant.review_count, total.label("total"))
        .where(*matching)
        .order_by(*SORT_ORDERS[sort])
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )
    return str(statement.compile(dialect=dialect))


@functools.cache
def listing_statement(dialect: Dialect, sort: str, searching: bool) -> str | PreparedSelect:
    """The listing's statement, prepared unless searching.

    PostgreSQL's generic plan for a page of all restaurants is the one it picks for any page
    (the order's index, then LIMIT and OFFSET; the bounded count's scan beside it): measured at
    200 restaurants and at 100,000, first page and last, and checked at 20,000 by
    tests/webapp/test_restaurant_search.py.
    A search is never prepared: its pattern must reach the planner as a value for the trigram
    index to serve it (see `_matching`).
    """
    sql = listing_sql(dialect, sort, searching)
    return sql if searching else PreparedSelect.of(sql)


@functools.cache
def _count_sql(dialect: Dialect, searching: bool) -> str:
    return str(_bounded_count(_matching(searching)).compile(dialect=dialect))


def _bounded_count(matching: tuple) -> Select:
    # A constant in the SQL, not a parameter: these statements run with the caller's only.
    bound = literal_column(str(LISTED_MAX + 1), Integer)
    counted = select(Restaurant.id).where(*matching).limit(bound).subquery()
    return select(func.count()).select_from(counted)


def search_parameter(search: str) -> str:
    """The LIKE pattern of names containing ``search``: its own % and _ escaped (backslash is
    LIKE's escape character), so they match themselves. Folding leaves all three as they are."""
    escaped = _LIKE_SPECIAL.sub(r"\\\1", search)
    return f"%{escaped}%"


def _matching(searching: bool) -> tuple:
    """The WHERE clause of a name search: a substring of the folded name, folded alike.

    Every function in the pattern is immutable, so PostgreSQL computes it while planning (the
    driver sends the value inline) and the trigram index can serve it.
    """
    if not searching:
        return ()
    pattern = func.fold_name(bindparam("search", type_=Text), type_=Text)
    return (Restaurant.name_folded.like(pattern),)


def restaurant_details(engine: Engine, restaurant_id: int) -> RestaurantDetails | None:
    """A restaurant with its average rating, review count and reviews newest first."""
    rows = read_rows(engine, _details_statement(engine.dialect), {"restaurant_id": restaurant_id})
    if not rows:
        return None
    # An outer join: a restaurant without reviews is one row with no review in it.
    reviews = () if rows[0][_REVIEW_ID] is None else tuple(
        map(_new_review_item, map(_REVIEW_COLUMNS, rows)))
    return RestaurantDetails(*rows[0][:_REVIEW_ID], reviews)


# The details' columns: a RestaurantDetails' but its reviews, the review's id, then a
# ReviewItem's.
_REVIEW_ID = len(fields(RestaurantDetails)) - 1
_REVIEW_COLUMNS = operator.itemgetter(slice(_REVIEW_ID + 1, None))
# ReviewItem._make without its Python-level call: each row's columns are exactly its fields.
_new_review_item = functools.partial(tuple.__new__, ReviewItem)


@functools.cache
def _details_statement(dialect: Dialect) -> PreparedSelect:
    """The details statement, prepared: one restaurant by id has one best plan."""
    return PreparedSelect.of(_details_sql(dialect))


def _details_sql(dialect: Dialect) -> str:
    """A single statement: the restaurant joined to its reviews (a restaurant without reviews
    is one row of NULLs); the aggregates are the restaurant's own columns. Parameter:
    restaurant_id. The columns are in the order of RestaurantDetails, then ReviewItem."""
    statement = (
        select(
            Restaurant.id,
            Restaurant.name,
            Restaurant.street_address,
            Restaurant.description,
            Restaurant.average_rating,
            Restaurant.review_count,
            Review.id.label("review_id"),
            Review.reviewer_name,
            Review.rating,
            Review.review_text,
            Review.photo_name,
            Review.created_at,
            Review.photo_width,
            Review.photo_height,
        )
        .outerjoin(Review, Review.restaurant_id == Restaurant.id)
        .where(Restaurant.id == bindparam("restaurant_id", type_=Integer))
        .order_by(Review.created_at.desc(), Review.id.desc())
    )
    return str(statement.compile(dialect=dialect))

