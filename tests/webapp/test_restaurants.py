"""Restaurants: create, list (paginated, aggregated in one query), details, 404, escaping."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from webapp.queries import RestaurantCard


def restaurant_names(html: str) -> list[str]:
    return re.findall(r'<h2 class="restaurant-card__name">\s*<a [^>]*>([^<]*)</a>', html)


def test_home_page_without_restaurants_invites_to_add_one(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "No restaurants yet" in response.text


def test_created_restaurant_is_listed_and_has_a_details_page(client, add_restaurant):
    restaurant_id = add_restaurant(
        "Trattoria Uno", street_address="3 Via Roma",
        description="Pasta",
    )

    home = client.get("/")
    assert restaurant_names(home.text) == ["Trattoria Uno"]
    assert f'href="/restaurants/{restaurant_id}"' in home.text

    details = client.get(f"/restaurants/{restaurant_id}")
    assert details.status_code == 200
    assert "<h1>Trattoria Uno</h1>" in details.text
    assert "3 Via Roma" in details.text
    assert "Pasta" in details.text
    assert "No reviews yet" in details.text


def test_create_redirects_with_303_and_flashes_a_confirmation(client):
    response = client.post(
        "/restaurants/new",
        data={"name": "Bistro", "street_address": "9 Rue"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "Bistro was added" in response.text
    assert response.history[0].status_code == 303


def test_missing_fields_are_reported_next_to_each_field(client, run_sql):
    response = client.post("/restaurants/new", data={"name": "   ", "street_address": ""})

    assert response.status_code == 400
    html = response.text
    assert '<p class="field-error" id="name-error">Enter the restaurant&#39;s name.</p>' in html
    assert 'id="street_address-error">Enter the street address.</p>' in html
    # The error is tied to its input for screen readers.
    assert re.search(r'<input [^>]*aria-describedby="name-error"[^>]*id="name"', html)
    assert run_sql("SELECT count(*) FROM restaurants") == [(0,)]


def test_over_long_name_is_rejected(client, run_sql):
    response = client.post("/restaurants/new", data={"name": "x" * 101, "street_address": "1"})
    assert response.status_code == 400
    assert "Field cannot be longer than 100 characters." in response.text
    assert run_sql("SELECT count(*) FROM restaurants") == [(0,)]


def test_unknown_restaurant_is_a_404_page(client):
    response = client.get("/restaurants/999999")
    assert response.status_code == 404
    assert "Page not found" in response.text
    assert 'class="site-header"' in response.text  # the site's page, not a bare error


def test_home_page_shows_average_rating_count_and_stars(client, add_restaurant, add_review):
    reviewed = add_restaurant("Alpha")
    add_restaurant("Beta")
    for rating in ("5", "4", "4"):
        assert add_review(reviewed, rating=rating).status_code == 303

    html = client.get("/").text

    assert 'aria-label="Rated 4.3 out of 5">★★★★☆</span>' in html
    assert "4.3 · 3 reviews" in html
    assert "No reviews yet" in html  # Beta


def test_rating_stars_are_the_stars_macro_for_each_exact_pair(app):
    # 3.45 and 3.5 both print as "3.5" but light 3 and 4 stars: the rendered pairs never mix.
    pairs = [(3.5, 2), (3.45, 2), (None, 0), (4.0, 1), (4.0, 2), (3.45, 2), (3.5, 2)]
    rating_stars = app.jinja_env.filters["rating_stars"]
    with app.app_context():
        macros = app.jinja_env.get_template("_macros.html").make_module()
        for average_rating, review_count in pairs:
            card = RestaurantCard(1, "Alpha", "1 Main Street", average_rating, review_count)
            assert rating_stars(card) == macros.stars(average_rating, review_count)
    assert "★★★☆☆" in rating_stars(RestaurantCard(1, "A", "B", 3.45, 2))
    assert "★★★★☆" in rating_stars(RestaurantCard(1, "A", "B", 3.5, 2))


def test_details_page_shows_each_reviews_stars_and_date(client, add_restaurant, add_review):
    restaurant_id = add_restaurant("Alpha")
    assert add_review(restaurant_id, rating="4").status_code == 303

    html = client.get(f"/restaurants/{restaurant_id}").text

    assert 'aria-label="4 out of 5">★★★★☆</span>' in html

    [(stamp, day)] = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', html)
    posted = datetime.fromisoformat(stamp)
    assert posted.tzinfo is not None
    assert abs(datetime.now(UTC) - posted) < timedelta(minutes=5)
    assert day == posted.strftime("%d %b %Y")


def test_home_page_is_paginated_by_name(two_per_page, client, add_restaurant):
    for name in ("Delta", "Alpha", "Echo", "Charlie", "Bravo"):
        add_restaurant(name)

    first = client.get("/")
    assert restaurant_names(first.text) == ["Alpha", "Bravo"]
    assert "Page 1 of 3" in first.text
    assert 'rel="next" href="/?page=2"' in first.text
    assert 'rel="prev"' not in first.text

    last = client.get("/?page=3")
    assert restaurant_names(last.text) == ["Echo"]
    assert 'rel="prev" href="/?page=2"' in last.text
    assert 'rel="next"' not in last.text

    assert client.get("/?page=4").status_code == 404
    assert client.get("/?page=0").status_code == 404


@pytest.fixture
def ten_per_page(config: dict) -> None:
    config["RESTAURANTS_PER_PAGE"] = 10


def test_home_page_is_one_query_however_many_restaurants_and_reviews(
    ten_per_page, app, client, add_restaurant, add_review, statements
):
    for number in range(12):
        restaurant_id = add_restaurant(f"Place {number:02}")
        for rating in ("3", "5"):
            add_review(restaurant_id, rating=rating)

    for page in (1, 2):
        statements.clear()
        response = client.get(f"/?page={page}")
        assert response.status_code == 200
        assert len(statements) == 1, statements
    assert "4.0 · 2 reviews" in response.text


def test_user_text_is_escaped_not_rendered_as_html(client, add_restaurant, add_review):
    attack = "<script>alert('x')</script>"
    restaurant_id = add_restaurant(attack, description=f"<img src=x onerror=alert(1)>{attack}")
    add_review(restaurant_id, reviewer_name=attack, review_text=f"{attack} tasty")

    for page in (client.get("/").text, client.get(f"/restaurants/{restaurant_id}").text):
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
