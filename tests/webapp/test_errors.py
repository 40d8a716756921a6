"""Error pages (webapp/errors.py) and what errors carry: outage pages, no visitor text in logs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError


def test_an_outage_on_a_page_view_offers_to_try_the_page_again(database_down, client):
    response = client.get("/restaurants/7?from=home")

    assert response.status_code == 503
    assert "Nothing was saved" not in response.text
    assert "not saved" not in response.text
    assert '<a class="button" href="/restaurants/7?from=home">Try again</a>' in response.text


def test_an_outage_on_a_form_says_it_was_not_saved_and_to_go_back(database_down, client):
    response = client.post("/restaurants/new", data={"name": "Down", "street_address": "1 A"})

    assert response.status_code == 503
    assert "What you submitted was not saved" in response.text
    assert "Back button (what you typed is still there)" in response.text
    assert "Try again</a>" not in response.text


def test_a_too_large_review_whose_page_runs_out_of_budget_is_a_503(app, add_restaurant,
                                                                   add_review):
    restaurant_id = add_restaurant()
    # The 413 page reads the restaurant: with no budget left that read gives up at once.
    settings = app.extensions["settings"]
    app.extensions["settings"] = replace(settings, request_budget_seconds=0)
    too_big = b"\xff\xd8" + b"0" * app.config["MAX_CONTENT_LENGTH"]

    response = add_review(restaurant_id, photo=(too_big, "huge.jpg"))

    assert response.status_code == 503
    assert "What you submitted was not saved" in response.text


def test_a_failed_statement_does_not_repeat_what_the_visitor_wrote(app):
    """Flask logs an unexpected database error with its message: no review text in it."""
    visitor_text = "my neighbour at 12 Elm Street"
    with pytest.raises(DBAPIError) as failure, app.extensions["db_engine"].connect() as db:
        db.execute(text("SELECT 1 / 0 WHERE CAST(:text AS text) IS NOT NULL"),
                   {"text": visitor_text})

    assert "division by zero" in str(failure.value)
    assert visitor_text not in str(failure.value)
