"""Seeding a throwaway site on tiny numbers: what `make bench` and `make chaos` load."""

from __future__ import annotations

import time

from azure.storage.blob import BlobServiceClient

from devtools import bench, chaos, seeding, site_setup

SITE_NAME = "seeding_probe"


def test_seed_inserts_every_restaurant_with_its_reviews_and_photos(postgres, seeded):
    per_restaurant = postgres.execute(
        "SELECT restaurant_id, count(*), min(rating), max(rating), "
        "array_agg(DISTINCT photo_name) FROM reviews GROUP BY restaurant_id ORDER BY 1",
        database=SITE_NAME,
    )
    assert postgres.execute("SELECT count(*) FROM restaurants", database=SITE_NAME) == [(3,)]
    assert len(per_restaurant) == 3
    for _restaurant, reviews, lowest, highest, photos in per_restaurant:
        assert reviews == 2
        assert 1 <= lowest <= highest <= 5
        assert set(photos) <= set(seeded)


def test_seeded_photos_are_stored_under_the_sites_names(azurite, seeded):
    assert len(set(seeded)) == 2  # distinct images, distinct content-addressed names
    container = BlobServiceClient.from_connection_string(
        azurite.connection_string).get_container_client(site_setup.PHOTO_CONTAINER)
    for name in seeded:
        properties = container.get_blob_client(name).get_blob_properties()
        assert properties.content_settings.content_type == "image/jpeg"


def test_search_seed_names_one_restaurant_in_every_words_with_the_searched_word(
        postgres, site_environment):
    seeding.seed_search(postgres, SITE_NAME, restaurants=200, words=10)
    matches = postgres.execute("SELECT count(*) FROM restaurants WHERE name_folded LIKE "
                               "fold_name(%s)", database=SITE_NAME,
                               params=(f"%{seeding.SEARCH_TEXT}%",))
    assert matches == [(20,)]
    postgres.execute("DELETE FROM restaurants WHERE street_address LIKE '%%Search Street'",
                     database=SITE_NAME)



def test_make_bench_and_make_chaos_seed_through_this_module():
    """Both harnesses load their sites with these functions, not copies of them."""
    for harness in (bench, chaos):
        assert harness.seed is seeding.seed
        assert harness.sample_photos is seeding.sample_photos
        assert harness.upload_photos is seeding.upload_photos


def test_a_settled_database_leaves_autovacuum_nothing_to_do(postgres, seeded):
    def pending() -> list[tuple]:
        return postgres.execute(
            "SELECT n_mod_since_analyze, n_ins_since_vacuum FROM pg_stat_user_tables "
            "WHERE relname = 'reviews'", database=SITE_NAME)

    postgres.execute("INSERT INTO reviews (restaurant_id, reviewer_name, rating, review_text) "
                     "SELECT 1, 'Settle', 3, 'x' FROM generate_series(1, 50)", database=SITE_NAME)
    # The inserting backend reports its counts as it exits, after its client has gone: counts
    # arriving after the VACUUM would be changes made after settling.
    deadline = time.monotonic() + 10
    while pending()[0][0] < 50 and time.monotonic() < deadline:
        time.sleep(0.05)

    seeding.settle(postgres, SITE_NAME)

    assert pending() == [(0, 0)]
