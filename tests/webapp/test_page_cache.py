"""The page caches: fewer queries, never stale for this process's own writes, nothing per-user.

Home listing and restaurant details are cached per process; everything a visitor owns (flash
messages, CSRF token, form input and errors) is rendered per request.
"""

from __future__ import annotations

import re
import time

import pytest
from site_pages import csrf_token

from webapp import create_app
from webapp.db import get_engine, get_session
from webapp.models import Restaurant
from webapp.page_cache import (
    DETAILS_MAX_ENTRIES,
    LISTING_MAX_ENTRIES,
    ChangeStamp,
    default_stamp_path,
)

CACHE_SECONDS = 60  # long enough that only an invalidation can explain a fresh page


@pytest.fixture
def config(config: dict, request) -> dict:
    extra = getattr(request, "param", {})  # a test's own settings, through indirect=True
    return {**config, "HOME_PAGE_CACHE_SECONDS": CACHE_SECONDS,
            "DETAILS_PAGE_CACHE_SECONDS": CACHE_SECONDS, **extra}


def restaurant_statements(statements: list[str]) -> list[str]:
    return [s for s in statements if "restaurants" in s or "reviews" in s]


# the home page's listing ---------------------------------------------------------------------


def test_repeated_home_page_views_reuse_the_listing(client, add_restaurant, statements):
    add_restaurant("Cached Bistro")
    client.get("/")
    statements.clear()

    for _ in range(3):
        assert "Cached Bistro" in client.get("/").text

    assert not restaurant_statements(statements)


def test_a_flash_on_the_home_page_reaches_only_its_visitor(client, app, add_restaurant):
    add_restaurant("Shared Diner")
    other_visitor = app.test_client()
    assert "Shared Diner" in other_visitor.get("/").text  # the whole page is now cached
    with client.session_transaction() as visitor_session:
        visitor_session["_flashes"] = [("message", "Only for this visitor")]

    own_page = client.get("/").text
    assert "Only for this visitor" in own_page and "Shared Diner" in own_page
    assert "Only for this visitor" not in other_visitor.get("/").text
    assert "Only for this visitor" not in client.get("/").text  # shown once, then gone


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


def test_pages_past_the_end_are_not_kept_and_the_listing_bound_is_64(client, add_restaurant,
                                                                      app):
    add_restaurant()
    for page in range(1, 200):
        client.get(f"/?page={page}")
    cache = app.extensions["listing_cache"]
    assert len(cache) == 1  # only page 1 exists

    for key in range(100):
        cache.put(key, "listing")
    assert LISTING_MAX_ENTRIES == 64
    assert len(cache) == 64


def test_the_caches_are_cleared_when_a_write_commits_not_when_it_flushes(app, client,
                                                                           add_restaurant):
    restaurant_id = add_restaurant("Before")
    client.get("/")
    client.get(f"/restaurants/{restaurant_id}")
    caches = [app.extensions["listing_cache"], app.extensions["details_cache"]]
    assert [len(cache) for cache in caches] == [1, 1]

    with app.app_context():
        session = get_session()
        session.add(Restaurant(name="Rolled back", street_address="3 Oak"))
        session.flush()
        session.rollback()
        assert [len(cache) for cache in caches] == [1, 1]  # nothing changed

        session.add(Restaurant(name="Pending", street_address="4 Oak"))
        session.flush()
        # Not committed: other requests still see the old rows and may keep caching them.
        assert [len(cache) for cache in caches] == [1, 1]
        session.commit()
        assert [len(cache) for cache in caches] == [0, 0]

    assert "Pending" in client.get("/").text
    with app.app_context():
        get_session().commit()  # a commit that changed nothing keeps the listing
    assert len(caches[0]) == 2  # the listing, and the whole page (no message was waiting)


# the details page ----------------------------------------------------------------------------


def test_repeated_details_views_reuse_the_restaurant_and_its_reviews(
        client, add_restaurant, add_review, statements):
    restaurant_id = add_restaurant("Reused Bistro", description="Soup all day.")
    add_review(restaurant_id, reviewer_name="Grace", review_text="Great soup.", rating="5")
    client.get(f"/restaurants/{restaurant_id}")
    statements.clear()

    for _ in range(3):
        page = client.get(f"/restaurants/{restaurant_id}").text
        for shown in ("Reused Bistro", "Soup all day.", "Grace", "Great soup.",
                      "5.0 · 1 review", "<title>Reused Bistro · Restaurant reviews</title>"):
            assert shown in page

    assert not restaurant_statements(statements)


def test_a_review_is_on_the_page_its_poster_is_sent_back_to(client, add_restaurant, add_review):
    restaurant_id = add_restaurant()
    assert "No reviews yet. Be the first!" in client.get(f"/restaurants/{restaurant_id}").text

    posted = add_review(restaurant_id, reviewer_name="Linus", review_text="Crisp fries.")
    page = client.get(posted.headers["Location"]).text

    assert "Crisp fries." in page
    assert "4.0 · 1 review" in page
    assert "Thank you for your review!" in page


@pytest.fixture
def second_worker(config):
    """Another worker process of the same instance: same settings, caches of its own."""
    worker = create_app(config)
    yield worker
    get_engine(worker).dispose()
    worker.extensions["photo_store"].close()


def test_a_write_through_another_worker_of_this_instance_shows_at_once(
        client, app, add_restaurant, second_worker):
    restaurant_id = add_restaurant("Two Workers")
    assert "No reviews yet" in client.get(f"/restaurants/{restaurant_id}").text
    assert "Two Workers" in client.get("/").text  # both pages cached by this worker

    other = second_worker.test_client()
    posted = other.post(f"/restaurants/{restaurant_id}/reviews",
                        data={"reviewer_name": "Ada", "rating": "5", "review_text": "Yes."})
    assert posted.status_code == 303
    other.post("/restaurants/new", data={"name": "Newer Place", "street_address": "9 Elm"})

    # The poster's next request may land on any worker: each sees the change straight away.
    assert "5.0 · 1 review" in client.get(f"/restaurants/{restaurant_id}").text
    assert "Newer Place" in client.get("/").text


def test_reviews_added_elsewhere_show_after_the_time_to_live(client, add_restaurant, run_sql,
                                                             app):
    restaurant_id = add_restaurant()
    client.get(f"/restaurants/{restaurant_id}")
    run_sql("INSERT INTO reviews (restaurant_id, reviewer_name, rating, review_text) "
            "VALUES (%s, 'Remote', 3, 'Written through another instance.')", (restaurant_id,))
    assert "another instance" not in client.get(f"/restaurants/{restaurant_id}").text

    app.extensions["details_cache"].clear()  # what the time-to-live does
    assert "another instance" in client.get(f"/restaurants/{restaurant_id}").text


def test_unknown_restaurants_are_not_kept(client, app):
    for restaurant_id in range(1, 50):
        assert client.get(f"/restaurants/{restaurant_id}").status_code == 404
    assert len(app.extensions["details_cache"]) == 0


def test_the_details_cache_is_bounded_in_entries(app, client, add_restaurant):
    cache = app.extensions["details_cache"]
    ids = [add_restaurant(f"Place {number}") for number in range(3)]
    for restaurant_id in ids:
        client.get(f"/restaurants/{restaurant_id}")
    assert len(cache) == 3

    for key in range(DETAILS_MAX_ENTRIES):
        cache.put(("filler", key), "<p>details</p>")
    assert len(cache) == DETAILS_MAX_ENTRIES
    assert [cache.get(restaurant_id) for restaurant_id in ids] == [None, None, None]


DETAILS_BYTES = 12_000


@pytest.mark.parametrize("config", [{"DETAILS_CACHE_MAX_BYTES": DETAILS_BYTES}], indirect=True)
def test_the_details_cache_is_bounded_in_bytes(app, client, add_restaurant, add_review):
    ids = [add_restaurant(f"Place {number}") for number in range(6)]
    for restaurant_id in ids:
        add_review(restaurant_id, review_text="x" * 1000)
    cache = app.extensions["details_cache"]

    for restaurant_id in ids:
        assert "x" * 1000 in client.get(f"/restaurants/{restaurant_id}").text
        assert cache.size_bytes <= DETAILS_BYTES

    assert 1 < len(cache) < len(ids)  # the pages fit a few at a time
    assert cache.get(ids[-1]) is not None  # the newest is kept, the oldest went
    assert cache.get(ids[0]) is None


# nothing user-specific is cached -------------------------------------------------------------


def test_every_visitor_gets_their_own_csrf_token_on_a_cached_page(csrf_on, app,
                                                                  add_restaurant):
    restaurant_id = _add_restaurant_with_csrf(app, "Token Diner")
    tokens = set()
    for _ in range(3):
        visitor = app.test_client()  # a new browser: its own session
        page = visitor.get(f"/restaurants/{restaurant_id}").text
        tokens.add(csrf_token(page))
        assert "Token Diner" in page
    assert len(tokens) == 3


def test_a_visitors_form_input_errors_and_flash_stay_with_that_visitor(
        client, add_restaurant, add_review, app):
    restaurant_id = add_restaurant("Form Cafe")
    client.get(f"/restaurants/{restaurant_id}")  # restaurant and blank form now cached

    rejected = add_review(restaurant_id, reviewer_name="Typed Name", review_text="")
    assert rejected.status_code == 400
    assert "Write a few words about your visit." in rejected.text
    assert 'value="Typed Name"' in rejected.text

    other_visitor = app.test_client()
    page = other_visitor.get(f"/restaurants/{restaurant_id}").text
    assert "Typed Name" not in page
    assert "Write a few words" not in page
    assert "field--invalid" not in page

    client.get(f"/restaurants/{restaurant_id}")  # the poster's own page is blank again too
    add_review(restaurant_id)  # flashes "Thank you" into the poster's session only
    assert "Thank you for your review!" not in other_visitor.get(
        f"/restaurants/{restaurant_id}").text
    assert "Thank you for your review!" in client.get(f"/restaurants/{restaurant_id}").text


def _add_restaurant_with_csrf(app, name: str) -> int:
    client = app.test_client()
    token = csrf_token(client.get("/restaurants/new").text)
    response = client.post("/restaurants/new", data={
        "csrf_token": token, "name": name, "street_address": "1 Main Street"})
    assert response.status_code == 303, response.text
    return int(re.search(r"/restaurants/(\d+)$", response.headers["Location"]).group(1))


def test_the_change_stamp_tells_every_change_apart_even_within_one_clock_tick(tmp_path,
                                                                             monkeypatch):
    path = tmp_path / "changed"
    watcher, writer = ChangeStamp(path), ChangeStamp(path)
    assert not watcher.changed_elsewhere()

    monkeypatch.setattr(time, "time_ns", lambda: 1_000_000_000)  # a clock that stands still
    writer.mark_changed()
    assert watcher.changed_elsewhere()
    assert not watcher.changed_elsewhere()  # seen once
    writer.mark_changed()
    assert watcher.changed_elsewhere()
    assert not writer.changed_elsewhere()  # the writer has already cleared its own caches

    path.unlink()  # a temp-folder clean-up: reported as a change, and recreated
    assert watcher.changed_elsewhere()
    writer.mark_changed()
    assert path.exists() and watcher.changed_elsewhere()


def test_a_stamp_that_cannot_be_written_does_not_fail_the_saved_write(
    app, client, add_restaurant, run_sql, monkeypatch, caplog
):
    restaurant_id = add_restaurant("Stamped")

    def refuse(*_args, **_kwargs):
        raise PermissionError("read-only temp folder")

    monkeypatch.setattr("webapp.page_cache.os.utime", refuse)
    response = client.post(f"/restaurants/{restaurant_id}/reviews", data={
        "reviewer_name": "Ada", "rating": "5", "review_text": "Saved anyway."})

    assert response.status_code == 303
    assert run_sql("SELECT review_text FROM reviews") == [("Saved anyway.",)]
    assert "Page cache change stamp" in caplog.text
    assert "PermissionError" in caplog.text
    # This process's own caches were still cleared: the new review shows at once.
    assert "Saved anyway." in client.get(f"/restaurants/{restaurant_id}").text


def test_the_default_stamp_is_per_user(app, monkeypatch):
    ours = default_stamp_path(app)
    monkeypatch.setattr("webapp.page_cache.os.getuid", lambda: 12345)
    other_user = default_stamp_path(app)

    assert ours != other_user
    assert ours.parent == other_user.parent
    assert "-12345-" in other_user.name
