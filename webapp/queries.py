"""Read queries shared by the views: one statement per page, plain rows, no ORM state.

They run on a pooled connection in autocommit mode: a single statement sees one consistent
snapshot by itself, and skipping BEGIN and ROLLBACK saves two of a read's four round trips
(the checkout ping is the other one, db.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Select, Text, func, literal, select

from .models import Restaurant, Review

# The listing's orders; name and id last, so equal values keep a stable order across pages.
# Each has an index in the same order (webapp/models.py).
SORT_ORDERS = {
    "name": (Restaurant.name, Restaurant.id),
    "rating": (Restaurant.average_rating.desc().nulls_last(), Restaurant.name, Restaurant.id),
    "reviews": (Restaurant.review_count.desc(), Restaurant.name, Restaurant.id),
}
DEFAULT_SORT = "name"
_LIKE_SPECIAL = re.compile(r"([\\%_])")


@dataclass(frozen=True)
class ReviewItem:
    """One review as the details page shows it: plain values, no ORM state to track."""

    reviewer_name: str
    rating: int
    review_text: str
    photo_name: str | None
    created_at: datetime
    photo_width: int | None = None
    photo_height: int | None = None


@dataclass(frozen=True)
class RestaurantDetails:
    id: int
    name: str
    street_address: str
    description: str
    average_rating: float | None
    review_count: int
    reviews: list[ReviewItem]


@dataclass(frozen=True)
class RestaurantCard:
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
    items: list[RestaurantCard]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def restaurant_page(engine: Engine, query: ListingQuery) -> RestaurantPage:
    """One page of restaurants with their average rating and review count.

    A single statement on the restaurants table alone: the aggregates are its own columns
    (kept by a trigger), the total a scalar subquery counting only the matching rows.
    """
    matching = _matching(query.search)
    total = select(func.count()).select_from(Restaurant).where(*matching).scalar_subquery()
    statement = (
        select(Restaurant.id, Restaurant.name, Restaurant.street_address,
               Restaurant.average_rating, Restaurant.review_count, total.label("total"))
        .where(*matching)
        .order_by(*SORT_ORDERS[query.sort])
        .limit(query.per_page)
        .offset((query.page - 1) * query.per_page)
    )
    rows = _read(engine, statement)
    items = [RestaurantCard(row.id, row.name, row.street_address, row.average_rating,
                            row.review_count) for row in rows]
    total_count = rows[0].total if rows else _read(engine, select(total))[0][0]
    return RestaurantPage(items=items, page=query.page, per_page=query.per_page,
                          total=total_count)


def _matching(search: str) -> tuple:
    """The WHERE clause of a name search: a substring of the folded name, folded alike.

    The pattern's own % and _ are escaped (backslash is LIKE's escape character), so they match
    themselves. Every function in the pattern is immutable, so PostgreSQL computes it while
    planning and the trigram index can serve it.
    """
    if not search:
        return ()
    escaped = _LIKE_SPECIAL.sub(r"\\\1", search)
    pattern = literal("%") + func.fold_name(escaped, type_=Text) + literal("%")
    return (Restaurant.name_folded.like(pattern),)


def restaurant_details(engine: Engine, restaurant_id: int) -> RestaurantDetails | None:
    """A restaurant with its average rating, review count and reviews newest first.

    A single statement: the restaurant joined to its reviews (a restaurant without reviews is
    one row of NULLs); the aggregates are the restaurant's own columns.
    """
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
        .where(Restaurant.id == restaurant_id)
        .order_by(Review.created_at.desc(), Review.id.desc())
    )
    rows = _read(engine, statement)
    if not rows:
        return None
    first = rows[0]
    reviews = [
        ReviewItem(row.reviewer_name, row.rating, row.review_text, row.photo_name,
                   row.created_at, row.photo_width, row.photo_height)
        for row in rows
        if row.review_id is not None
    ]
    return RestaurantDetails(first.id, first.name, first.street_address, first.description,
                             first.average_rating, first.review_count, reviews)


def _read(engine: Engine, statement: Select) -> list:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return connection.execute(statement).all()
