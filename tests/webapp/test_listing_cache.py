"""The home page's listing cache: fewer queries, never stale for this process's own writes."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from webapp.db import get_engine
from webapp.listing_cache import ListingCache

CACHE_SECONDS = 60  # long enough that only an invalidation can explain a fresh listing


@pytest.fixture
def config(config: dict) -> dict:
    return {**config, "HOME_PAGE_CACHE_SECONDS": CACHE_SECONDS}


@pytest.fixture
def statements(app) -> list[str]:
    seen: list[str] = []
    event.listen(get_engine(app), "before_cursor_execute",
                 lambda _conn, _cursor, statement, *_args: seen.append(statement))
    return seen


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
