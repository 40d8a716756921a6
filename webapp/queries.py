"""Read queries shared by the views. Each page costs a fixed number of statements (no N+1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Restaurant, Review


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


def restaurant_page(session: Session, page: int, per_page: int) -> RestaurantPage:
    """One page of restaurants by name with their average rating and review count.

    A single statement: the inner query picks the page (and counts all restaurants with a
    window function, evaluated before LIMIT), the outer one aggregates only that page's reviews.
    """
    # Only the columns the page shows: loading ORM entities would cost more than the query.
    page_rows = (
        select(
            Restaurant.id,
            Restaurant.name,
            Restaurant.street_address,
            func.count().over().label("total"),
        )
        .order_by(Restaurant.name, Restaurant.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
        .subquery()
    )
    statement = (
        select(
            page_rows.c.id,
            page_rows.c.name,
            page_rows.c.street_address,
            page_rows.c.total,
            func.avg(Review.rating).label("average_rating"),
            func.count(Review.id).label("review_count"),
        )
        .outerjoin(Review, Review.restaurant_id == page_rows.c.id)
        .group_by(*page_rows.c)
        .order_by(page_rows.c.name, page_rows.c.id)
    )
    rows = session.execute(statement).all()
    items = [
        RestaurantCard(row.id, row.name, row.street_address, _as_float(row.average_rating),
                       row.review_count)
        for row in rows
    ]
    total = rows[0].total if rows else 0
    return RestaurantPage(items=items, page=page, per_page=per_page, total=total)


def restaurant_details(session: Session, restaurant_id: int) -> RestaurantDetails | None:
    """A restaurant with its average rating, review count and reviews newest first.

    A single statement: the restaurant joined to its reviews, with the average and the count as
    window functions over all of them (a restaurant without reviews is one row of NULLs).
    Columns only: building ORM entities for 20 reviews cost more than the query itself.
    """
    every_review = {"partition_by": Restaurant.id}
    statement = (
        select(
            Restaurant.id,
            Restaurant.name,
            Restaurant.street_address,
            Restaurant.description,
            func.avg(Review.rating).over(**every_review).label("average_rating"),
            func.count(Review.id).over(**every_review).label("review_count"),
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
    rows = session.execute(statement).all()
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
                             _as_float(first.average_rating), first.review_count, reviews)


def _as_float(value) -> float | None:
    # PostgreSQL's avg() over integers is NUMERIC, which arrives as Decimal.
    return None if value is None else float(value)
