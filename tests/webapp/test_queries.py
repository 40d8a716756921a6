"""The details read: one statement's rows as plain values, and what makes two reads the same."""

from __future__ import annotations

from dataclasses import replace

import pytest

from webapp.db import get_engine
from webapp.queries import ReviewItem, restaurant_details


@pytest.fixture
def restaurant_id(run_sql) -> int:
    [(restaurant_id,)] = run_sql("INSERT INTO restaurants (name, street_address, description) "
                                 "VALUES ('Query Bistro', '2 Row Street', 'Plain values') "
                                 "RETURNING id")
    return restaurant_id


def add_review(run_sql, restaurant_id: int, name: str, rating: int, text: str,
               photo: tuple[str, int, int] | None = None, days_ago: int = 0) -> None:
    photo_name, width, height = photo or (None, None, None)
    run_sql("INSERT INTO reviews (restaurant_id, reviewer_name, rating, review_text, photo_name, "
            "photo_width, photo_height, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, now() - make_interval(days => %s))",
            (restaurant_id, name, rating, text, photo_name, width, height, days_ago))


def details(app, restaurant_id: int):
    with app.app_context():
        return restaurant_details(get_engine(app), restaurant_id)


def test_a_restaurant_without_reviews_has_none(app, restaurant_id):
    read = details(app, restaurant_id)

    assert (read.id, read.name, read.street_address, read.description) == (
        restaurant_id, "Query Bistro", "2 Row Street", "Plain values")
    assert (read.average_rating, read.review_count, read.reviews) == (None, 0, ())


def test_every_review_column_lands_in_its_field_newest_first(app, run_sql, restaurant_id):
    add_review(run_sql, restaurant_id, "Old", 2, "First visit.", days_ago=3)
    add_review(run_sql, restaurant_id, "New", 5, "Second visit.", photo=("a.jpg", 640, 480))

    read = details(app, restaurant_id)

    assert [type(review) for review in read.reviews] == [ReviewItem, ReviewItem]
    newest, oldest = read.reviews
    assert newest._replace(created_at=None) == ReviewItem(
        "New", 5, "Second visit.", "a.jpg", None, 640, 480)
    assert oldest._replace(created_at=None) == ReviewItem(
        "Old", 2, "First visit.", None, None, None, None)
    assert newest.created_at > oldest.created_at
    assert (read.average_rating, read.review_count) == (3.5, 2)


def test_reads_are_equal_only_when_every_value_is(app, run_sql, restaurant_id):
    add_review(run_sql, restaurant_id, "Ann", 4, "Good soup.")
    read = details(app, restaurant_id)
    edited = replace(read, reviews=(read.reviews[0]._replace(review_text="Good bread."),))

    assert details(app, restaurant_id) == read
    assert hash(details(app, restaurant_id)) == hash(read)
    # Hashed on a few values, so an edit elsewhere shares the hash, but never equality.
    assert edited != read
    assert hash(edited) == hash(read)


def test_the_page_shows_a_review_edited_in_place(client, run_sql, restaurant_id):
    # Nothing in the site edits a review, but an operator may (in SQL): the markup memo must
    # then render the page again, although its count, rating and newest review stay the same.
    add_review(run_sql, restaurant_id, "Ann", 4, "Good soup.")
    assert "Good soup." in client.get(f"/restaurants/{restaurant_id}").text

    run_sql("UPDATE reviews SET review_text = 'Good bread.' WHERE restaurant_id = %s",
            (restaurant_id,))
    page = client.get(f"/restaurants/{restaurant_id}").text

    assert "Good bread." in page
    assert "Good soup." not in page
