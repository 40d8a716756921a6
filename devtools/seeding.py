"""Restaurants, reviews and photos for a throwaway site: what `make bench` and `make chaos` load.

Photos go in through the site's own storage code, so their names and headers are the ones an
upload gets; rows go in set-wise, a statement per table whatever the numbers. The site's
database, role, container and schema come first (devtools/site_setup.py).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from devtools.services import PostgresCluster

DISTINCT_PHOTOS = 4
# The search data: names of two made-up words, one in `words` of them SEARCH_WORD (accented),
# which a search finds as SEARCH_TEXT: unaccented, in capitals, a substring.
SEARCH_WORD = "Crêperie"
SEARCH_TEXT = "CREPER"


def sample_photos(count: int = DISTINCT_PHOTOS) -> list[bytes]:
    """Small, distinct JPEGs (a few KB each), like phone photos scaled down."""
    photos = []
    for index in range(count):
        image = Image.new("RGB", (320, 240), (40 + 50 * index % 200, 120, 200 - 40 * index % 200))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
        photos.append(buffer.getvalue())
    return photos


def upload_photos(environment: dict[str, str], photos: Sequence[bytes]) -> list[str]:
    """Store the photos as the site stores uploads (names, headers); return the blob names."""
    import webapp  # the site's own storage code, not a copy of its naming rules
    from webapp.storage import current_photo_store

    app = webapp.create_app(environment)
    with app.app_context():
        return [current_photo_store().upload(photo, "jpg").name for photo in photos]


def seed(postgres: PostgresCluster, database: str, photo_names: Sequence[str],
         restaurants: int, reviews_per_restaurant: int) -> None:
    """Insert restaurants and reviews set-wise: two statements, whatever the numbers.

    (`%%s` is format()'s placeholder, escaped from psycopg2's.)
    """
    with postgres.connect(database) as conn:
        conn.autocommit = False  # both inserts or neither
        with conn, conn.cursor() as cursor:  # psycopg2: commits on success, else rolls back
            _insert_restaurants_and_reviews(cursor, photo_names, restaurants,
                                            reviews_per_restaurant)
    settle(postgres, database)


def _insert_restaurants_and_reviews(cursor, photo_names: Sequence[str], restaurants: int,
                                    reviews_per_restaurant: int) -> None:
    cursor.execute(
        """
        INSERT INTO restaurants (name, street_address, description)
        SELECT format('Bench Bistro %%s', lpad(i::text, 4, '0')),
               format('%%s Benchmark Street, Seattle', i),
               'A seeded restaurant with a short description for the benchmark.'
        FROM generate_series(1, %(restaurants)s) AS i
        """,
        {"restaurants": restaurants},
    )
    cursor.execute(
        """
        INSERT INTO reviews (restaurant_id, reviewer_name, rating, review_text, photo_name,
                             created_at)
        SELECT r.id, format('Reviewer %%s', n), 1 + mod(r.id + n, 5),
               'Seeded review: friendly staff, generous portions, would come back.',
               (%(photos)s::text[])[1 + mod(r.id + n, cardinality(%(photos)s::text[]))],
               now() - n * interval '1 hour'
        FROM restaurants AS r CROSS JOIN generate_series(1, %(reviews)s) AS n
        """,
        {"photos": list(photo_names), "reviews": reviews_per_restaurant},
    )


def seed_search(postgres: PostgresCluster, database: str, restaurants: int, words: int) -> None:
    """Restaurants named "<random word> <word n>", one statement; one in `words` holds
    SEARCH_WORD, so a search for SEARCH_TEXT matches that share of them."""
    with postgres.connect(database) as conn, conn.cursor() as cursor:
        conn.autocommit = True
        cursor.execute(
            """
            INSERT INTO restaurants (name, street_address)
            SELECT format('%%s %%s', initcap(substr(md5(i::text), 1, 8)),
                          CASE WHEN i %% %(words)s = 0 THEN %(word)s
                               ELSE format('Tavern%%s', i %% %(words)s) END),
                   format('%%s Search Street', i)
            FROM generate_series(1, %(restaurants)s) AS i
            """,
            {"restaurants": restaurants, "words": words, "word": SEARCH_WORD},
        )
    settle(postgres, database)


def settle(postgres: PostgresCluster, database: str) -> None:
    """Do now what autovacuum and the checkpointer would do later, in the middle of a
    measurement: statistics, the visibility map (so pages can use index-only scans), the trigram
    index's pending entries merged, dirty pages written. VACUUM cannot run in a transaction."""
    with postgres.connect(database) as conn, conn.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("CHECKPOINT")
