"""The schema as SQLAlchemy models. Migrations (webapp/migrations) create it; keep them in step."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Computed,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    Uuid,
    func,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

MIN_RATING = 1
MAX_RATING = 5
# Ids are PostgreSQL `integer` (serial) columns: a larger number can name no row.
MAX_ID = 2**31 - 1

# Deterministic constraint names so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Restaurant(Base):
    __tablename__ = "restaurants"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # The name as search compares it, accents dropped and case folded ("Café" -> "cafe"), by
    # the database function fold_name (migration 0004), which folds the search text too.
    # Searched as a substring through its trigram index (pg_trgm serves LIKE '%...%').
    name_folded: Mapped[str] = mapped_column(Text, Computed("fold_name(name)", persisted=True))
    street_address: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    submission_token: Mapped[uuid.UUID | None] = mapped_column(Uuid, unique=True)
    # Its reviews' count and sum of ratings, kept by a trigger on reviews in the same
    # transaction as each insert or delete (migration 0004): sorting 1,000,000 reviews by
    # restaurant then reads an index instead of aggregating them all.
    review_count: Mapped[int] = mapped_column(Integer, server_default="0")
    rating_sum: Mapped[int] = mapped_column(Integer, server_default="0")
    # NULL before the first review (and sorted last).
    average_rating: Mapped[float | None] = mapped_column(
        Double, Computed("rating_sum::float8 / NULLIF(review_count, 0)", persisted=True))

    reviews: Mapped[list[Review]] = relationship(back_populates="restaurant")


Index("ix_restaurants_name_id", Restaurant.name, Restaurant.id)  # the home page: by name
Index("ix_restaurants_rating", Restaurant.average_rating.desc().nulls_last(),
      Restaurant.name, Restaurant.id)
Index("ix_restaurants_review_count", Restaurant.review_count.desc(), Restaurant.name,
      Restaurant.id)
Index("ix_restaurants_name_folded_trgm", Restaurant.name_folded,
      postgresql_using="gin", postgresql_ops={"name_folded": "gin_trgm_ops"})


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint(f"rating BETWEEN {MIN_RATING} AND {MAX_RATING}", name="rating_range"),
        # The details page reads one restaurant's reviews newest first; the home page aggregates
        # by restaurant_id.
        Index("ix_reviews_restaurant_id_created_at", "restaurant_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    restaurant_id: Mapped[int] = mapped_column(ForeignKey("restaurants.id", ondelete="CASCADE"))
    reviewer_name: Mapped[str] = mapped_column(String(100))
    rating: Mapped[int] = mapped_column(SmallInteger)
    review_text: Mapped[str] = mapped_column(Text)
    # Content-addressed blob name (see storage.py); None when the review has no photo.
    photo_name: Mapped[str | None] = mapped_column(String(100))
    # The stored photo's size in pixels, so the page can reserve its box before it loads.
    photo_width: Mapped[int | None] = mapped_column(Integer)
    photo_height: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    submission_token: Mapped[uuid.UUID | None] = mapped_column(Uuid, unique=True)

    restaurant: Mapped[Restaurant] = relationship(back_populates="reviews")


def is_repeated_submission(error: IntegrityError) -> bool:
    """Whether the insert failed because a row with its submission token is already saved."""
    constraint = getattr(getattr(error.orig, "diag", None), "constraint_name", None)
    return constraint in {
        f"uq_{model.__tablename__}_submission_token" for model in (Restaurant, Review)
    }
