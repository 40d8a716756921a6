"""Error pages (webapp/errors.py): what an outage page says after a read and after a form."""

from __future__ import annotations

from dataclasses import replace


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
