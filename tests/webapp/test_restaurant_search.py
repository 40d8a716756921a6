"""The home page's search and sort: folded substring match, each order, pages, bad parameters.

The review aggregates the orders read are kept by triggers (migration 0004): checked here with
writes that bypass the app, and the search's index with a plan at a real (if small) scale.
"""

from __future__ import annotations

import pytest

from tests.webapp.test_restaurants import restaurant_names
from webapp.db import get_engine
from webapp.queries import LISTED_MAX, listing_sql, listing_statement, search_parameter

NAMES = ("Café Olé", "CAFETERIA Nord", "Le Petit Bistro", "Crème Brûlée", "100% Vegan",
         "Under_score", "Smörgås Hörnan")


@pytest.fixture
def named(add_restaurant) -> dict[str, int]:
    return {name: add_restaurant(name) for name in NAMES}


@pytest.mark.parametrize(("search", "expected"), [
    ("cafe", ["Café Olé", "CAFETERIA Nord"]),
    ("CAFÉ", ["Café Olé", "CAFETERIA Nord"]),
    ("BRULEE", ["Crème Brûlée"]),
    ("e o", ["Café Olé"]),
    ("tit bis", ["Le Petit Bistro"]),
    ("smorgas hornan", ["Smörgås Hörnan"]),
    ("  petit   bistro ", ["Le Petit Bistro"]),  # spaces as typed in a hurry
    ("%", ["100% Vegan"]),  # LIKE's wildcards match themselves
    ("_", ["Under_score"]),
    ("zzz", []),
])
def test_search_finds_names_containing_the_text_whatever_the_case_and_accents(
        client, named, search, expected):
    response = client.get("/", query_string={"q": search})

    assert response.status_code == 200
    assert restaurant_names(response.text) == sorted(expected)
    if not expected:
        assert "No restaurant name contains" in response.text


def test_each_sort_order(client, named, add_review):
    for name, ratings in (("Le Petit Bistro", "55"), ("Café Olé", "334"), ("Under_score", "1")):
        for rating in ratings:
            add_review(named[name], rating=rating)
    unrated = sorted(set(NAMES) - {"Le Petit Bistro", "Café Olé", "Under_score"})

    assert restaurant_names(client.get("/?sort=name").text) == sorted(NAMES)
    assert restaurant_names(client.get("/?sort=rating").text) == [
        "Le Petit Bistro", "Café Olé", "Under_score", *unrated]  # 5.0, 3.3, 1.0, none
    assert restaurant_names(client.get("/?sort=reviews").text) == [
        "Café Olé", "Le Petit Bistro", "Under_score", *unrated]  # 3, 2, 1, then by name
    assert 'value="reviews" selected' in client.get("/?sort=reviews").text


def test_search_results_are_paged_and_the_links_keep_the_search_and_order(two_per_page, client,
                                                                          add_restaurant):
    for name in ("Noodle A", "Noodle B", "Noodle C", "Pizza"):
        add_restaurant(name)

    first = client.get("/?q=noodle&sort=reviews")
    assert restaurant_names(first.text) == ["Noodle A", "Noodle B"]
    assert "Page 1 of 2" in first.text
    assert 'rel="next" href="/?page=2&amp;q=noodle&amp;sort=reviews"' in first.text
    assert 'value="noodle"' in first.text

    last = client.get("/?q=noodle&sort=reviews&page=2")
    assert restaurant_names(last.text) == ["Noodle C"]
    assert client.get("/?q=noodle&page=3").status_code == 404


@pytest.mark.parametrize(("query", "message"), [
    ({"sort": "price"}, "Unknown sort order: choose one of name, rating, reviews."),
    ({"sort": ""}, "Unknown sort order"),
    ({"q": "x" * 101}, "longer than 100 characters"),
    ({"q": "a\x00b"}, "NUL character"),
])
def test_unusable_parameters_are_a_400_naming_the_problem(client, query, message):
    response = client.get("/", query_string=query)

    assert response.status_code == 400
    assert message in response.text
    assert "price" not in response.text.split("<main", 1)[1]  # the input is not echoed back


def test_an_unreadable_page_number_is_the_first_page_and_one_out_of_range_a_404(client, named):
    assert restaurant_names(client.get("/?page=abc").text) == sorted(NAMES)
    assert client.get("/?page=0").status_code == 404
    assert client.get("/?page=-3&q=cafe").status_code == 404


def test_the_aggregates_follow_every_insert_and_delete_whoever_writes(named, run_sql):
    bistro, cafe = named["Le Petit Bistro"], named["Café Olé"]
    run_sql("INSERT INTO reviews (restaurant_id, reviewer_name, rating, review_text) "
            "SELECT r, 'Bulk', n, 'Set-wise.' FROM unnest(%s::int[]) AS r, generate_series(1, 3) "
            "AS n", ([bistro, cafe],))
    run_sql("DELETE FROM reviews WHERE restaurant_id = %s AND rating = 1", (cafe,))
    run_sql("UPDATE reviews SET restaurant_id = %s WHERE restaurant_id = %s AND rating = 3",
            (bistro, cafe))

    aggregates = run_sql("SELECT id, review_count, rating_sum, average_rating FROM restaurants "
                         "WHERE id IN (%s, %s) ORDER BY id", (bistro, cafe))
    assert sorted(aggregates) == sorted([(bistro, 4, 9, 2.25), (cafe, 1, 2, 2.0)])


SCALE = 20_000


def test_the_search_reads_the_trigram_index_at_scale(app, run_sql):
    run_sql("INSERT INTO restaurants (name, street_address) "
            "SELECT format('Place %%s %%s', i, md5(i::text)), 'Somewhere' "
            "FROM generate_series(1, %s) AS i", (SCALE,))
    run_sql("VACUUM ANALYZE restaurants")  # what autovacuum does: the GIN pending list merged
    engine = get_engine(app)
    parameters = {"search": search_parameter("PLACE 123"), "limit": 20, "offset": 0}

    with engine.connect() as connection:
        sql = listing_sql(engine.dialect, "name", True)
        plan = "\n".join(connection.exec_driver_sql(f"EXPLAIN {sql}", parameters).scalars())
        first = connection.exec_driver_sql(sql, parameters).first()

    assert "ix_restaurants_name_folded_trgm" in plan, plan
    assert first.total == 111  # 123, 1230-1239, 12300-12399: about 0.5 %


# The index each order reads (migrations 0001 and 0004).
ORDER_INDEXES = {"name": "ix_restaurants_name_id", "rating": "ix_restaurants_rating",
                 "reviews": "ix_restaurants_review_count"}


@pytest.mark.parametrize("sort", sorted(ORDER_INDEXES))
def test_a_prepared_page_of_all_restaurants_reads_its_orders_index_whatever_the_page(
        app, run_sql, sort):
    # PostgreSQL may plan a prepared statement once for every value: that generic plan must
    # be the one a first page gets, never a sort of every restaurant.
    run_sql("INSERT INTO restaurants (name, street_address) "
            "SELECT format('Place %%s', md5(i::text)), 'Somewhere' "
            "FROM generate_series(1, %s) AS i", (SCALE,))
    run_sql("VACUUM ANALYZE restaurants")
    engine = get_engine(app)
    statement = listing_statement(engine.dialect, sort, searching=False)
    last_page_offset = LISTED_MAX - 20

    with engine.connect() as connection:
        connection.exec_driver_sql(statement.prepare)
        plans = {}
        for mode in ("force_generic_plan", "force_custom_plan"):
            connection.exec_driver_sql(f"SET plan_cache_mode = {mode}")
            for offset in (0, last_page_offset):
                explain = f"EXPLAIN (COSTS OFF) EXECUTE {statement.name}(20, {offset})"
                plans[mode, offset] = "\n".join(connection.exec_driver_sql(explain).scalars())

    generic = plans["force_generic_plan", 0]
    assert f"Index Scan using {ORDER_INDEXES[sort]}" in generic, generic
    assert "Sort" not in generic, generic
    assert plans["force_generic_plan", last_page_offset] == generic
    assert plans["force_custom_plan", 0] == generic


def test_a_search_is_never_prepared(app):
    # Its pattern must reach the planner as a value for the trigram index to serve it.
    assert isinstance(listing_statement(get_engine(app).dialect, "name", searching=True), str)


def test_the_pages_reach_the_first_ten_thousand_then_point_to_the_search(client, run_sql):
    run_sql("INSERT INTO restaurants (name, street_address) "
            "SELECT format('Place %%s', lpad(i::text, 5, '0')), 'Somewhere' "
            "FROM generate_series(1, %s) AS i", (LISTED_MAX + 5,))

    first = client.get("/?sort=reviews")
    assert "Page 1 of 500" in first.text
    assert "The pages show the first 10,000; search by name to find the others." in first.text
    last = client.get("/?page=500")
    assert restaurant_names(last.text)[-1] == f"Place {LISTED_MAX:05}"
    assert client.get("/?page=501").status_code == 404
    assert "Place 10003" in client.get("/?q=place 10003").text  # found by a search
