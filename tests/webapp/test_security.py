"""CSRF, security headers and cookie flags behind App Service's HTTPS front end."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from itsdangerous import BadSignature

from tests.site_pages import csrf_token
from webapp import create_app
from webapp.db import get_engine


@pytest.fixture
def csrf_client(config):
    """A client of an app with CSRF protection on, as in production."""
    app: Flask = create_app({**config, "WTF_CSRF_ENABLED": True})
    yield app.test_client()
    get_engine(app).dispose()
    app.extensions["photo_store"].close()


def test_forms_without_csrf_token_are_rejected_and_save_nothing(csrf_client, run_sql):
    response = csrf_client.post("/restaurants/new", data={"name": "Forged", "street_address": "1"})

    assert response.status_code == 400
    assert "Form expired" in response.text
    assert run_sql("SELECT count(*) FROM restaurants") == [(0,)]


def test_forms_with_the_token_from_the_page_are_accepted(csrf_client, run_sql):
    form_page = csrf_client.get("/restaurants/new")
    token = csrf_token(form_page.text)

    response = csrf_client.post(
        "/restaurants/new", data={"name": "Real", "street_address": "1", "csrf_token": token}
    )
    assert response.status_code == 303
    restaurant_page = csrf_client.get(response.headers["Location"]).text

    # The review form carries its own token too.
    forged_review = csrf_client.post(
        response.headers["Location"] + "/reviews",
        data={"reviewer_name": "Eve", "rating": "1", "review_text": "forged"},
    )
    assert forged_review.status_code == 400
    review = csrf_client.post(
        response.headers["Location"] + "/reviews",
        data={"reviewer_name": "Bob", "rating": "5", "review_text": "real",
              "csrf_token": csrf_token(restaurant_page)},
    )
    assert review.status_code == 303
    assert run_sql("SELECT reviewer_name FROM reviews") == [("Bob",)]


def test_review_over_https_behind_the_front_end_needs_a_same_origin_referer(csrf_client,
                                                                            run_sql):
    # App Service ends TLS and forwards plain HTTP: Flask-WTF then sees HTTPS (through
    # ProxyFix) and, as for any HTTPS request, also insists on a same-origin Referer.
    [(restaurant_id,)] = run_sql(
        "INSERT INTO restaurants (name, street_address) VALUES ('Secure Bistro', '1 A') "
        "RETURNING id"
    )
    # Plain-HTTP requests as the front end forwards them; only the header says HTTPS.
    page = f"/restaurants/{restaurant_id}"
    https = {"X-Forwarded-Proto": "https"}
    token = csrf_token(csrf_client.get(page, headers=https).text)
    review = {"reviewer_name": "Bob", "rating": "5", "review_text": "real", "csrf_token": token}

    without_referer = csrf_client.post(f"{page}/reviews", data=review, headers=https)
    assert without_referer.status_code == 400
    other_site = csrf_client.post(f"{page}/reviews", data=review,
                                  headers={**https, "Referer": "https://evil.example/"})
    assert other_site.status_code == 400
    assert run_sql("SELECT count(*) FROM reviews") == [(0,)]

    accepted = csrf_client.post(f"{page}/reviews", data=review,
                                headers={**https, "Referer": f"https://localhost{page}"})
    assert accepted.status_code == 303
    assert accepted.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert run_sql("SELECT reviewer_name FROM reviews") == [("Bob",)]


def test_pages_carry_security_headers(client):
    headers = client.get("/").headers

    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in headers  # plain HTTP locally


def session_cookie(response) -> str:
    return next(
        value for value in response.headers.getlist("Set-Cookie") if value.startswith("session=")
    )


def test_session_cookie_is_secure_behind_the_https_front_end(client):
    # App Service terminates TLS and forwards plain HTTP with X-Forwarded-Proto: https.
    response = client.post(
        "/restaurants/new",
        data={"name": "Secure", "street_address": "1"},
        headers={"X-Forwarded-Proto": "https"},
    )
    cookie = session_cookie(response)  # the flash message lives in the session
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_the_reused_session_signer_follows_a_changed_secret_key(app):
    interface = app.session_interface
    old_key = app.secret_key
    signed = interface.get_signing_serializer(app).dumps({"csrf_token": "t"})
    assert interface.get_signing_serializer(app) is interface.get_signing_serializer(app)
    assert interface.get_signing_serializer(app).loads(signed) == {"csrf_token": "t"}

    app.secret_key = "another-secret-key-0123456789"
    with pytest.raises(BadSignature):
        interface.get_signing_serializer(app).loads(signed)

    app.config["SECRET_KEY_FALLBACKS"] = [old_key]  # a key rotation keeps old sessions
    assert interface.get_signing_serializer(app).loads(signed) == {"csrf_token": "t"}


def test_session_cookie_is_not_secure_over_plain_local_http(client):
    response = client.post("/restaurants/new", data={"name": "Local", "street_address": "1"})
    cookie = session_cookie(response)
    assert "Secure" not in cookie
    assert "HttpOnly" in cookie


def test_healthz_is_plain_and_uncached(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok\n"
    assert response.headers["Cache-Control"] == "no-store"


def test_no_external_assets_are_referenced(client):
    html = client.get("/").text
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert client.get("/static/style.css").status_code == 200


@pytest.mark.parametrize("referer", [
    "https://localhost:abc/restaurants/new",  # port not a number
    "https://localhost:99999/restaurants/new",  # port out of range
    "https://[::1/restaurants/new",  # unclosed IPv6 bracket
])
def test_a_malformed_referer_over_https_is_a_csrf_400(csrf_client, run_sql, referer):
    https = {"X-Forwarded-Proto": "https"}
    token = csrf_token(csrf_client.get("/restaurants/new", headers=https).text)

    response = csrf_client.post(
        "/restaurants/new", data={"name": "Bad Referer", "street_address": "1",
                                  "csrf_token": token},
        headers={**https, "Referer": referer})

    assert response.status_code == 400
    assert "Form expired" in response.text
    assert run_sql("SELECT count(*) FROM restaurants") == [(0,)]


def test_pages_with_a_csrf_token_are_never_stored_by_a_cache(csrf_client, run_sql):
    [(restaurant_id,)] = run_sql(
        "INSERT INTO restaurants (name, street_address) VALUES ('Cached', '1 A') RETURNING id")

    for page in ("/restaurants/new", f"/restaurants/{restaurant_id}"):
        response = csrf_client.get(page)
        assert 'name="csrf_token"' in response.text
        assert response.headers["Cache-Control"] == "no-store"
    # A page without a form may be kept.
    assert "Cache-Control" not in csrf_client.get("/").headers
