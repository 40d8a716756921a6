"""Odd but ordinary input (NUL characters, huge ids and page numbers) is a 4xx, never a 500."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from webapp.db import get_session
from webapp.forms import NUL_MESSAGE
from webapp.models import MAX_ID
from webapp.queries import LISTED_MAX
from webapp.restaurants import last_possible_page

NUL = "\x00"


def field_error(html: str, field: str) -> str | None:
    start = html.find(f'id="{field}-error">')
    if start < 0:
        return None
    return html[start:html.index("</p>", start)]


@pytest.mark.parametrize("field", ["name", "street_address", "description"])
def test_nul_in_a_restaurant_field_is_reported_next_to_that_field(client, run_sql, field):
    data = {"name": "Chez Nul", "street_address": "1 Main Street", "description": "Soup"}
    data[field] = f"A{NUL}B"

    response = client.post("/restaurants/new", data=data)

    assert response.status_code == 400
    assert NUL_MESSAGE in field_error(response.text, field)
    assert run_sql("SELECT count(*) FROM restaurants") == [(0,)]


@pytest.mark.parametrize("field", ["reviewer_name", "review_text"])
def test_nul_in_a_review_field_is_reported_and_nothing_is_stored(
    add_restaurant, add_review, make_image, run_sql, container, field
):
    restaurant_id = add_restaurant()

    response = add_review(restaurant_id, photo=(make_image("PNG"), "a.png"), **{field: f"A{NUL}B"})

    assert response.status_code == 400
    assert "contains a NUL character" in field_error(response.text, field)
    assert run_sql("SELECT count(*) FROM reviews") == [(0,)]
    assert not container.exists() or not list(container.list_blobs())


@pytest.mark.parametrize("restaurant_id", [MAX_ID, MAX_ID + 1, 9_999_999_999, 2**63])
def test_ids_beyond_the_id_column_are_404s(client, restaurant_id):
    assert client.get(f"/restaurants/{restaurant_id}").status_code == 404
    review = client.post(f"/restaurants/{restaurant_id}/reviews",
                         data={"reviewer_name": "Ada", "rating": "4", "review_text": "Hi"})
    assert review.status_code == 404
    assert "Page not found" in review.text


def test_pages_past_any_possible_page_are_404s_without_a_query(client, statements):
    last = last_possible_page(20)
    assert last * 20 >= LISTED_MAX > (last - 1) * 20

    for page in (last + 1, 2**63 - 1, 10**30):
        statements.clear()
        assert client.get(f"/?page={page}").status_code == 404
        assert statements == []

    # The last possible page is queried (its OFFSET fits) and is simply past the end here.
    assert client.get(f"/?page={last}").status_code == 404
    assert statements


def test_a_value_the_database_refuses_is_a_400_that_does_not_repeat_it(app, client, caplog):
    value = "not-a-number-7f3a9c"

    @app.get("/probe")
    def probe():
        get_session().execute(text("SELECT CAST(:value AS integer)"), {"value": value})
        return "unreachable"

    with caplog.at_level(logging.DEBUG):
        response = client.get("/probe")

    assert response.status_code == 400
    assert "Invalid value" in response.text
    assert value not in response.text
    assert "Database refused a value: InvalidTextRepresentation (SQLSTATE 22P02)" in caplog.text
    assert value not in caplog.text
