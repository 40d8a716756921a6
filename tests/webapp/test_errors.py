"""Error pages (webapp/errors.py): what an outage page says after a read and after a form."""

from __future__ import annotations


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
