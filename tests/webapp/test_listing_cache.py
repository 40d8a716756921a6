"""The home page's listing cache: fewer queries, never stale for this process's own writes."""

from __future__ import annotations

import pytest

from webapp.db import get_session
from webapp.listing_cache import ListingCache
from webapp.models import Restaurant

CACHE_SECONDS = 60  # long enough that only an invalidation can explain a fresh listing


@pytest.fixture
def config(config: dict) -> dict:
    return {**config, "HOME_PAGE_CACHE_SECONDS": CACHE_SECONDS}


def test_repeated_home_page_views_reuse_the_listing(client, add_restaurant, statements):
    add_restaurant("Cached Bistro")
    client.get("/")
    statements.clear()

    for _ in range(3):
        assert "Cached Bistro" in client.get("/").text

    assert not [s for s in statements if "restaurants" in s]


def test_this_process_sees_its_own_writes_at_once(client, add_restaurant, add_review):
    first = add_restaurant("First Place")
    assert "No reviews yet" in client.get("/").text  # listing now cached

    add_restaurant("Second Place")
    add_review(first, rating="5")

    home = client.get("/").text
    assert "Second Place" in home
    assert "5.0 · 1 review" in home


def test_changes_made_elsewhere_show_after_the_time_to_live(client, add_restaurant, run_sql,
                                                            app):
    add_restaurant("Local Diner")
    client.get("/")
    # Another instance writes: this process has no way to know before its entry expires.
    run_sql("INSERT INTO restaurants (name, street_address) VALUES ('Remote Cafe', '2 Elm')")
    assert "Remote Cafe" not in client.get("/").text

    app.extensions["listing_cache"].clear()  # what the time-to-live does
    assert "Remote Cafe" in client.get("/").text


def test_entries_expire_after_the_time_to_live():
    now = [100]
    cache = ListingCache(ttl_seconds=2, clock=lambda: now[0])
    loads = []

    def load():
        loads.append(now[0])
        return len(loads)

    assert cache.get_or_load("page-1", load) == 1
    now[0] += 1
    assert cache.get_or_load("page-1", load) == 1
    assert cache.get_or_load("page-2", load) == 2  # keys are independent
    now[0] += 1  # exactly at expiry: stale
    assert cache.get_or_load("page-1", load) == 3
    assert loads == [100, 101, 102]


def test_zero_seconds_turns_the_cache_off():
    cache = ListingCache(ttl_seconds=0)
    values = iter(range(10))
    assert [cache.get_or_load("k", lambda: next(values)) for _ in range(3)] == [0, 1, 2]


def test_a_load_that_overlaps_a_clear_is_not_kept():
    cache = ListingCache(ttl_seconds=60)
    database = ["old"]

    def load_while_another_request_commits():
        value = database[0]  # read before the other request's commit...
        database[0] = "new"
        cache.clear()  # ...which clears the cache while this load is still running
        return value

    assert cache.get_or_load("page-1", load_while_another_request_commits) == "old"
    assert cache.get_or_load("page-1", lambda: database[0]) == "new"
    assert cache.get_or_load("page-1", lambda: "not asked") == "new"


def test_nothing_past_the_last_page_is_kept():
    cache = ListingCache(ttl_seconds=60)
    for page in range(1000):
        assert cache.get_or_load(page, lambda: None) is None
    assert len(cache) == 0


def test_the_cache_keeps_at_most_max_entries_dropping_the_oldest():
    cache = ListingCache(ttl_seconds=60, max_entries=3)
    for page in range(1, 6):
        cache.get_or_load(page, lambda page=page: f"page {page}")

    assert len(cache) == 3
    assert cache.get_or_load(5, lambda: "reloaded") == "page 5"
    assert cache.get_or_load(3, lambda: "reloaded") == "page 3"
    assert cache.get_or_load(1, lambda: "reloaded") == "reloaded"  # evicted


def test_default_bound_is_64_entries(client, add_restaurant, app):
    add_restaurant()
    for page in range(1, 200):
        client.get(f"/?page={page}")
    assert len(app.extensions["listing_cache"]) == 1  # only page 1 exists

    cache = app.extensions["listing_cache"]
    for key in range(100):
        cache.get_or_load(key, lambda: "listing")
    assert len(cache) == 64


def test_the_cache_is_cleared_when_a_write_commits_not_when_it_flushes(app, client,
                                                                         add_restaurant):
    add_restaurant("Before")
    client.get("/")
    cache = app.extensions["listing_cache"]
    assert len(cache) == 1

    with app.app_context():
        session = get_session()
        session.add(Restaurant(name="Rolled back", street_address="3 Oak"))
        session.flush()
        session.rollback()
        assert len(cache) == 1  # nothing changed

        session.add(Restaurant(name="Pending", street_address="4 Oak"))
        session.flush()
        # Not committed: other requests still see the old rows and may keep caching them.
        assert len(cache) == 1
        session.commit()
        assert len(cache) == 0

    assert "Pending" in client.get("/").text
    with app.app_context():
        get_session().commit()  # a commit that changed nothing keeps the listing
    assert len(cache) == 1
