"""The page caches: fewer queries, never stale for this process's own writes, nothing per-user.

Home listing and restaurant details are cached per process; everything a visitor owns (flash
messages, submission token, form input and errors) is rendered per request.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tests.site_pages import hidden_field
from webapp import create_app
from webapp.config import KNOBS
from webapp.db import get_engine, get_session
from webapp.models import Restaurant
from webapp.page_cache import (
    EVERYTHING,
    RESTAURANT,
    REVIEW,
    ChangeLog,
    default_log_path,
)

LISTING_MAX_ENTRIES = KNOBS["LISTING_CACHE_MAX_ENTRIES"].default
DETAILS_MAX_ENTRIES = KNOBS["DETAILS_CACHE_MAX_ENTRIES"].default
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


def test_the_caches_learn_of_a_write_from_the_one_flush_listener_db_owns(app):
    """db.py's signal that a transaction wrote stamps the commit deadline and feeds the caches."""
    session = app.extensions["db_sessionmaker"]()
    assert [listener.__module__ for listener in session.dispatch.after_flush] == ["webapp.db"]
    session.close()


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
        # A new restaurant shifts the listing; no other restaurant's details change.
        assert [len(cache) for cache in caches] == [0, 1]

    assert "Pending" in client.get("/").text
    with app.app_context():
        get_session().commit()  # a commit that changed nothing keeps the listing
    assert len(caches[0]) == 2  # the listing, and the whole page (no message was waiting)


# the details page ----------------------------------------------------------------------------


def test_repeated_details_views_reuse_the_restaurant_and_its_reviews(
        client, add_restaurant, add_review, statements):
    restaurant_id = add_restaurant("Reused Bistro", description="Soup all day.")
    add_review(restaurant_id, reviewer_name="Grace", review_text="Great soup.", rating="5")
    # The first view shows the author their message (rendered for them), the next fills the
    # cache.
    for _ in range(2):
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


@pytest.mark.parametrize("config", [{"RESTAURANTS_PER_PAGE": 2}], indirect=True)
def test_a_review_in_another_worker_drops_only_the_pages_it_changed(
        client, add_restaurant, second_worker, statements):
    ids = {name: add_restaurant(name) for name in ("Alpha", "Bravo", "Charlie", "Delta")}
    first_page, second_page, by_rating = "/", "/?page=2", "/?sort=rating"  # Charlie on page 2
    for path in (first_page, second_page, by_rating, f"/restaurants/{ids['Alpha']}",
                 f"/restaurants/{ids['Charlie']}"):
        client.get(path)

    posted = second_worker.test_client().post(
        f"/restaurants/{ids['Charlie']}/reviews",
        data={"reviewer_name": "Ada", "rating": "5", "review_text": "Best in town."})
    assert posted.status_code == 303
    statements.clear()

    # Unchanged pages are still served from this worker's caches: no query at all.
    assert "Alpha" in client.get(first_page).text
    assert "Alpha" in client.get(f"/restaurants/{ids['Alpha']}").text
    assert not restaurant_statements(statements)
    # The review's restaurant, its listing page, and the order by rating are fresh.
    assert "Best in town." in client.get(f"/restaurants/{ids['Charlie']}").text
    assert "5.0 · 1 review" in client.get(second_page).text
    assert "Charlie" in client.get(by_rating).text.split("Page 1")[0]
    assert len(restaurant_statements(statements)) == 3


def test_a_new_restaurant_in_another_worker_drops_the_listing_not_the_details(
        client, add_restaurant, second_worker, statements):
    restaurant_id = add_restaurant("Kept Details")
    client.get("/")
    client.get(f"/restaurants/{restaurant_id}")

    second_worker.test_client().post("/restaurants/new",
                                     data={"name": "Brand New", "street_address": "9 Elm"})
    statements.clear()

    assert "Kept Details" in client.get(f"/restaurants/{restaurant_id}").text
    assert not restaurant_statements(statements)
    assert "Brand New" in client.get("/").text


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


DETAILS_BYTES = 24_000


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


def test_every_visitor_gets_their_own_submission_token_on_a_cached_page(app, add_restaurant):
    # One token shared by two visitors would have the second review dropped as a repeat.
    restaurant_id = add_restaurant("Token Diner")
    tokens = set()
    for _ in range(3):
        visitor = app.test_client()  # a new browser
        page = visitor.get(f"/restaurants/{restaurant_id}").text
        tokens.add(hidden_field(page, "submission_token"))
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


def test_the_change_log_hands_each_process_every_change_once(tmp_path):
    path = tmp_path / "changes"
    watcher, writer = ChangeLog(path), ChangeLog(path)
    assert watcher.changes_since_last_read() == []

    writer.record([(REVIEW, 7)])
    writer.record([(RESTAURANT, 8), (REVIEW, 9)])
    assert watcher.changes_since_last_read() == [(REVIEW, 7), (RESTAURANT, 8), (REVIEW, 9)]
    assert watcher.changes_since_last_read() == []  # seen once

    # A line still being written when another change moves the counter: read once it is whole.
    with path.open("ab") as log:
        log.write(b"review 1")
    writer.record([])
    assert watcher.changes_since_last_read() == []
    with path.open("ab") as log:
        log.write(b"0\nsomething else\n")
    writer.record([])
    assert watcher.changes_since_last_read() == [(REVIEW, 10), (EVERYTHING, 0)]


def test_learning_that_nothing_changed_costs_no_system_call(tmp_path, monkeypatch):
    path = tmp_path / "changes"
    watcher, writer = ChangeLog(path), ChangeLog(path)
    stats = []
    real_stat = Path.stat

    def counted_stat(self, **options):
        stats.append(self)
        return real_stat(self, **options)

    monkeypatch.setattr(Path, "stat", counted_stat)

    assert [watcher.changes_since_last_read() for _ in range(100)] == [[]] * 100
    assert stats == []
    writer.record([(REVIEW, 3)])
    assert watcher.changes_since_last_read() == [(REVIEW, 3)]
    assert path in stats


def test_without_a_shared_counter_each_read_checks_the_log(tmp_path, caplog):
    path = tmp_path / "changes"
    (tmp_path / "changes.count").mkdir()  # cannot be mapped
    with caplog.at_level(logging.WARNING):
        watcher, writer = ChangeLog(path), ChangeLog(path)
    assert "change counter" in caplog.text and "not mapped" in caplog.text

    assert watcher.changes_since_last_read() == []
    writer.record([(RESTAURANT, 4)])
    assert watcher.changes_since_last_read() == [(RESTAURANT, 4)]


def test_a_change_log_started_afresh_or_removed_drops_everything(tmp_path):
    path = tmp_path / "changes"
    watcher, writer = ChangeLog(path), ChangeLog(path, max_bytes=20)
    writer.record([(REVIEW, 1), (REVIEW, 2)])
    writer.record([(REVIEW, 3)])  # 27 bytes: the next change starts a new file
    assert watcher.changes_since_last_read() == [(REVIEW, 1), (REVIEW, 2), (REVIEW, 3)]

    writer.record([(REVIEW, 4)])
    assert path.read_text() == "review 4\n"
    assert watcher.changes_since_last_read() == [(EVERYTHING, 0)]  # it cannot know what it missed

    path.unlink()  # a temp-folder clean-up: noticed at the next change, which recreates it
    assert watcher.changes_since_last_read() == []
    writer.record([(RESTAURANT, 5)])
    assert watcher.changes_since_last_read() == [(EVERYTHING, 0)]  # another file again
    writer.record([(REVIEW, 6)])
    assert watcher.changes_since_last_read() == [(REVIEW, 6)]


def test_changes_written_by_another_process_reach_this_one(tmp_path):
    path = tmp_path / "changes"
    watcher = ChangeLog(path)
    writer = ("import sys; from pathlib import Path; from webapp.page_cache import ChangeLog; "
              "ChangeLog(Path(sys.argv[1])).record([('review', 41), ('restaurant', 42)])")
    subprocess.run([sys.executable, "-c", writer, str(path)], check=True, timeout=60)

    assert watcher.changes_since_last_read() == [(REVIEW, 41), (RESTAURANT, 42)]


def test_a_log_that_cannot_be_written_does_not_fail_the_saved_write(
    app, client, add_restaurant, run_sql, monkeypatch, caplog
):
    restaurant_id = add_restaurant("Logged")

    def refuse(*_args, **_kwargs):
        raise PermissionError("read-only temp folder")

    monkeypatch.setattr("webapp.page_cache.os.open", refuse)
    response = client.post(f"/restaurants/{restaurant_id}/reviews", data={
        "reviewer_name": "Ada", "rating": "5", "review_text": "Saved anyway."})

    assert response.status_code == 303
    assert run_sql("SELECT review_text FROM reviews") == [("Saved anyway.",)]
    assert "Page cache change log" in caplog.text
    assert "PermissionError" in caplog.text
    # This process's own caches were still cleared: the new review shows at once.
    assert "Saved anyway." in client.get(f"/restaurants/{restaurant_id}").text


def test_the_default_log_is_per_user(app, monkeypatch):
    ours = default_log_path(app, "photos")
    monkeypatch.setattr("webapp.page_cache.os.getuid", lambda: 12345)
    other_user = default_log_path(app, "photos")

    assert ours != other_user
    assert ours.parent == other_user.parent
    assert "-12345-" in other_user.name
