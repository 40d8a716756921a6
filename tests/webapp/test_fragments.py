"""Markup reused by what it shows, and pages filled in by slot (webapp/fragments.py).

The app's page caches are off here (conftest.py): every page is read from PostgreSQL, and only
rendering is saved.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from flask import Flask, template_rendered
from jinja2 import Template

from webapp import fragments
from webapp.fragments import MEMOISED_TEMPLATES, SlottedPage


def render_with(**values: str) -> str:
    return f"<h1>{values['title']}</h1><p>{values['body']}</p><i>{values['user']}</i>"


# SlottedPage ---------------------------------------------------------------------------------


def test_a_page_is_filled_slot_by_slot_in_the_order_they_appear():
    page = SlottedPage.render(render_with, ["user", "title", "body"])
    assert page.slots == ("title", "body", "user")

    restaurant_page = page.fill(title="Chez &amp; Co", body="Soup")
    assert restaurant_page.slots == ("user",)
    assert restaurant_page.html(user="Ada") == b"<h1>Chez &amp; Co</h1><p>Soup</p><i>Ada</i>"


def test_a_page_is_utf_8_and_takes_values_as_text_or_utf_8():
    page = SlottedPage.render(render_with, ["title", "body", "user"])

    html = page.html(title="Crêperie ★", body="Café".encode(), user="Zoë")

    assert html == "<h1>Crêperie ★</h1><p>Café</p><i>Zoë</i>".encode()


def test_a_slot_the_page_shows_twice_or_never_is_refused():
    with pytest.raises(RuntimeError, match="shows slot title 2 times"):
        SlottedPage.render(lambda **v: v["title"] * 2, ["title"])
    with pytest.raises(RuntimeError, match="shows slot title 0 times"):
        SlottedPage.render(lambda **v: "<p></p>", ["title"])


def test_an_unknown_or_unfilled_slot_is_an_error_not_a_silent_gap():
    page = SlottedPage.render(render_with, ["title", "body", "user"])
    with pytest.raises(KeyError, match="no slot named colour"):
        page.fill(colour="red")
    with pytest.raises(KeyError, match="slots left unfilled: body, user"):
        page.html(title="Chez")


# the details page ----------------------------------------------------------------------------


@contextlib.contextmanager
def rendered_templates(app: Flask) -> Iterator[list[str]]:
    """Names of the templates render_template renders meanwhile."""
    names: list[str] = []

    def record(_sender, template, **_extra) -> None:
        names.append(template.name)

    with template_rendered.connected_to(record, app):
        yield names


def test_the_details_page_is_rendered_once_per_process_then_filled(client, app,
                                                                  add_restaurant, add_review):
    ids = [add_restaurant(f"Place {number}") for number in range(3)]
    for restaurant_id in ids:
        add_review(restaurant_id, review_text=f"Review of {restaurant_id}")

    with rendered_templates(app) as names:
        pages = [client.get(f"/restaurants/{restaurant_id}").text
                 for restaurant_id in ids * 2]

    assert names.count("restaurants/detail.html") <= 1
    for restaurant_id, page in zip(ids * 2, pages, strict=True):
        assert f"Review of {restaurant_id}" in page
        assert f"<title>Place {ids.index(restaurant_id)} · Restaurant reviews</title>" in page
        assert f'action="/restaurants/{restaurant_id}/reviews"' in page


# the home page ------------------------------------------------------------------------------


def test_the_home_page_is_rendered_once_per_process_and_order_then_filled(client, app,
                                                                          add_restaurant):
    for name in ("Alpha Diner", "Beta Bistro"):
        add_restaurant(name)
    queries = [{}, {"q": "alpha"}, {"q": "bistro", "sort": "rating"}, {"sort": "rating"},
               {"q": "beta"}, {"sort": "reviews"}, {"q": "diner", "sort": "reviews"}]

    with rendered_templates(app) as names:
        pages = [client.get("/", query_string=query).text for query in queries]

    assert names.count("restaurants/index.html") == 3  # once per order
    for query, page in zip(queries, pages, strict=True):
        search = query.get("q", "")
        title = f"Search: {search}" if search else "Restaurants"
        assert f"<title>{title} · Restaurant reviews</title>" in page
        assert f'type="search" value="{search}"' in page
        assert f'<option value="{query.get("sort", "name")}" selected>' in page
        assert page.count(" selected>") == 1
    assert "Alpha Diner" in pages[1] and "Beta Bistro" not in pages[1]


def test_a_search_shows_in_the_title_and_the_search_box_escaped(client):
    page = client.get("/", query_string={"q": '<b>"Chez" & co'}).text

    escaped = "&lt;b&gt;&#34;Chez&#34; &amp; co"
    assert f"<title>Search: {escaped} · Restaurant reviews</title>" in page
    assert f'type="search" value="{escaped}"' in page
    assert "<b>" not in page


def test_a_form_with_errors_is_shown_on_the_restaurant_as_it_is_now(client, add_restaurant,
                                                                    add_review, run_sql):
    restaurant_id = add_restaurant("Before")
    run_sql("UPDATE restaurants SET name = 'After' WHERE id = %s", (restaurant_id,))
    page = add_review(restaurant_id, rating="9", review_text="Kept text").text
    assert "<title>After · Restaurant reviews</title>" in page
    assert "Kept text" in page and "Choose a rating from 1 to 5." in page


# reviews and cards, rendered once per content -----------------------------------------------


@contextlib.contextmanager
def renders_of(app: Flask, template_name: str) -> Iterator[list[dict]]:
    """The contexts a template is rendered with meanwhile (the memo renders it directly)."""
    template = app.jinja_env.get_template(template_name)
    contexts: list[dict] = []
    original = Template.render

    def counting_render(self, *args, **kwargs):
        if self is template:
            contexts.append(dict(*args, **kwargs))
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Template, "render", counting_render)
        yield contexts


def test_a_review_is_rendered_once_however_often_its_page_is_read(client, app, add_restaurant,
                                                                  add_review, statements):
    restaurant_id = add_restaurant()
    add_review(restaurant_id, review_text="Rendered once.")
    review_template, _ = MEMOISED_TEMPLATES["rendered_review"]
    statements.clear()

    with renders_of(app, review_template) as renders:
        for _ in range(3):
            assert "Rendered once." in client.get(f"/restaurants/{restaurant_id}").text

    assert len(renders) <= 1
    reads = [statement for statement in statements if not statement.startswith("PREPARE")]
    assert len(reads) == 3  # read every time


def test_a_changed_review_or_restaurant_is_rendered_anew_never_stale(client, add_restaurant,
                                                                     add_review, run_sql):
    restaurant_id = add_restaurant("Old Name")
    add_review(restaurant_id, review_text="Old text.")
    assert "Old text." in client.get(f"/restaurants/{restaurant_id}").text
    assert "Old Name" in client.get("/").text

    run_sql("UPDATE reviews SET review_text = 'New text.' WHERE restaurant_id = %s",
            (restaurant_id,))
    run_sql("UPDATE restaurants SET name = 'New Name' WHERE id = %s", (restaurant_id,))

    details = client.get(f"/restaurants/{restaurant_id}").text
    assert "New text." in details and "Old text." not in details
    home = client.get("/").text
    assert "New Name" in home and "Old Name" not in home


MEMO_BYTES = 40_000


@pytest.fixture
def small_memo(monkeypatch) -> None:
    """A memo of MEMO_BYTES (request before `app`)."""
    monkeypatch.setattr(fragments, "MEMO_MAX_BYTES", MEMO_BYTES)


def test_the_memo_is_bounded_in_bytes_and_pages_stay_whole(small_memo, app, client,
                                                          add_restaurant, add_review):
    memo = app.extensions["fragment_memo"]
    restaurant_id = add_restaurant()
    texts = [f"{number}" * 1800 for number in range(10)]
    for text in texts:
        add_review(restaurant_id, review_text=text)

    for _ in range(2):
        page = client.get(f"/restaurants/{restaurant_id}").text
        assert all(text in page for text in texts)
        assert memo.size_bytes <= MEMO_BYTES
    assert 1 < len(memo) < len(texts)  # some reviews kept, the least recent ones left


@pytest.fixture
def small_search_memo(monkeypatch) -> None:
    """A search memo of 3 listings (request before `app`)."""
    monkeypatch.setattr(fragments, "SEARCH_MEMO_MAX_ENTRIES", 3)


def test_a_search_listing_is_rendered_once_per_content_and_read_every_time(
        client, app, add_restaurant, statements):
    add_restaurant("Alpha Diner")
    statements.clear()

    with rendered_templates(app) as names:
        pages = [client.get("/", query_string={"q": "alpha"}).text for _ in range(3)]
    add_restaurant("Alphabet Café")
    with rendered_templates(app) as names_after_a_new_match:
        page_after_a_new_match = client.get("/", query_string={"q": "alpha"}).text

    assert all("Alpha Diner" in page for page in pages)
    assert names.count("restaurants/_listing.html") == 1
    assert len([s for s in statements if "fold_name" in s]) >= 3  # read every time
    # The key is what the listing shows: a new match is a new listing, never a stale one.
    assert names_after_a_new_match.count("restaurants/_listing.html") == 1
    assert "Alphabet Café" in page_after_a_new_match


def test_searches_are_kept_apart_and_cannot_push_out_the_shared_pages(
        small_search_memo, client, app, add_restaurant):
    add_restaurant("Shared Diner")
    client.get("/")
    shared = app.extensions["fragment_memo"]
    kept_before = len(shared)

    for number in range(10):
        assert client.get("/", query_string={"q": f"diner {number}"}).status_code == 200

    assert len(app.extensions["search_memo"]) == 3
    assert len(shared) == kept_before
    with rendered_templates(app) as names:
        client.get("/")
    assert "restaurants/_listing.html" not in names  # the shared listing is still there
