"""Search by name and sort by rating or number of reviews, fast at 100,000 restaurants.

- name_folded: the name without accents and case folded by fold_name(), a generated column
  (so every insert keeps it, whoever writes), searched as a substring through a trigram GIN
  index. unaccent and pg_trgm are trusted extensions: the database's owner may create them
  (locally); on Azure they must be allow-listed (azure.extensions, infra/data.py) and the
  deployer's SQL step creates them (infra/sql/app_role.sql), since the app's role has no CREATE
  on the database. IF NOT EXISTS then finds them there and asks for no privilege.
- review_count and rating_sum: each restaurant's aggregates, kept by statement-level triggers
  on reviews in the inserting transaction, with btree indexes for the two sort orders.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

AVERAGE_RATING = "rating_sum::float8 / NULLIF(review_count, 0)"
EXTENSIONS = ("unaccent", "pg_trgm")
# unaccent() is only STABLE (its dictionary could change), and an index or a generated column
# needs an IMMUTABLE expression: naming the dictionary makes the wrapper safe to declare so.
FOLD_NAME = """
CREATE FUNCTION fold_name(name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
RETURN lower(public.unaccent('public.unaccent'::regdictionary, name))
"""

# One function for the three triggers: transition tables allow one event per trigger.
KEEP_AGGREGATES = """
CREATE FUNCTION keep_restaurant_review_aggregates() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE restaurants AS r
        SET review_count = r.review_count - gone.reviews, rating_sum = r.rating_sum - gone.total
        FROM (SELECT restaurant_id, count(*) AS reviews, sum(rating) AS total
              FROM old_reviews GROUP BY restaurant_id) AS gone
        WHERE r.id = gone.restaurant_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE restaurants AS r
        SET review_count = r.review_count + added.reviews, rating_sum = r.rating_sum + added.total
        FROM (SELECT restaurant_id, count(*) AS reviews, sum(rating) AS total
              FROM new_reviews GROUP BY restaurant_id) AS added
        WHERE r.id = added.restaurant_id;
    END IF;
    RETURN NULL;
END
$$
"""
TRIGGERS = {
    "reviews_aggregates_insert": "INSERT ON reviews REFERENCING NEW TABLE AS new_reviews",
    "reviews_aggregates_delete": "DELETE ON reviews REFERENCING OLD TABLE AS old_reviews",
    "reviews_aggregates_update": "UPDATE ON reviews "
                                 "REFERENCING OLD TABLE AS old_reviews NEW TABLE AS new_reviews",
}


def upgrade() -> None:
    for extension in EXTENSIONS:
        op.execute(f"CREATE EXTENSION IF NOT EXISTS {extension} SCHEMA public")
    op.execute(FOLD_NAME)
    op.add_column("restaurants", sa.Column("name_folded", sa.Text(),
                                           sa.Computed("fold_name(name)", persisted=True)))
    for column in ("review_count", "rating_sum"):
        op.add_column("restaurants", sa.Column(column, sa.Integer(), nullable=False,
                                               server_default="0"))
    op.add_column("restaurants", sa.Column("average_rating", sa.Double(),
                                           sa.Computed(AVERAGE_RATING, persisted=True)))
    op.execute(KEEP_AGGREGATES)
    for name, event in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} AFTER {event} FOR EACH STATEMENT "
                   "EXECUTE FUNCTION keep_restaurant_review_aggregates()")
    op.execute("CREATE INDEX ix_restaurants_rating ON restaurants "
               "(average_rating DESC NULLS LAST, name, id)")
    op.execute("CREATE INDEX ix_restaurants_review_count ON restaurants "
               "(review_count DESC, name, id)")
    op.execute("CREATE INDEX ix_restaurants_name_folded_trgm ON restaurants "
               "USING gin (name_folded gin_trgm_ops)")
    # Last: the update queues the commit-deadline triggers (0002), and PostgreSQL refuses to
    # alter or index a table with trigger events pending.
    op.execute("UPDATE restaurants AS r SET review_count = agg.reviews, rating_sum = agg.total "
               "FROM (SELECT restaurant_id, count(*) AS reviews, sum(rating) AS total "
               "FROM reviews GROUP BY restaurant_id) AS agg WHERE r.id = agg.restaurant_id")


def downgrade() -> None:
    for index in ("ix_restaurants_name_folded_trgm", "ix_restaurants_review_count",
                  "ix_restaurants_rating"):
        op.drop_index(index, table_name="restaurants")
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON reviews")
    op.execute("DROP FUNCTION keep_restaurant_review_aggregates()")
    for column in ("average_rating", "rating_sum", "review_count", "name_folded"):
        op.drop_column("restaurants", column)
    op.execute("DROP FUNCTION fold_name(text)")
    # The extensions stay: the deployer may have created them, and the app's role could not
    # drop them then.
