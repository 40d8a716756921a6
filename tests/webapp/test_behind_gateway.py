"""The site behind two proxies: Application Gateway (WAF) -> App Service front end -> gunicorn.

The headers below are what infra/gateway.py's rewrite rule set and App Service's front end send
(webapp/security.py explains each one). The gateway talks to the app by the app's own host name,
so only X-Forwarded-Host carries the public one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask, request, url_for
from flask.testing import FlaskClient

from webapp import create_app
from webapp.config import ConfigError, Settings
from webapp.db import get_engine

PUBLIC_HOST = "reviews.example.com"
BACKEND_HOST = "app-rr-isolated-1a2b3c.ase-rr-isolated-1a2b3c.appserviceenvironment.net"
CLIENT = "203.0.113.7"
GATEWAY_INSTANCE = "10.50.3.4"  # an address of the gateway's subnet


def through_gateway(client_list: str = "") -> dict[str, str]:
    """What the app receives for a browser request to https://reviews.example.com/..."""
    forwarded_for = f"{client_list}, {CLIENT}" if client_list else CLIENT
    return {
        "Host": BACKEND_HOST,
        # gateway: the client's list plus the client, no ports; front end: + gateway instance.
        "X-Forwarded-For": f"{forwarded_for}, {GATEWAY_INSTANCE}",
        "X-Forwarded-Host": PUBLIC_HOST,
        "X-Forwarded-Proto": "https",
    }


def add_probe_route(app: Flask) -> None:
    """A test-only page that reports what the request looks like to the site's code."""

    def seen_by_the_site():
        return {"remote_addr": request.remote_addr, "scheme": request.scheme,
                "host": request.host, "is_secure": request.is_secure,
                "home": url_for("restaurants.index", _external=True)}

    app.add_url_rule("/_seen", "seen_by_the_site", seen_by_the_site)


def build(config: dict, **extra) -> Iterator[Flask]:
    app = create_app({**config, **extra})
    add_probe_route(app)
    yield app
    get_engine(app).dispose()
    app.extensions["photo_store"].close()


@pytest.fixture
def gateway_app(config) -> Iterator[Flask]:
    yield from build(config, TRUSTED_PROXY_HOPS="2")


@pytest.fixture
def gateway_client(gateway_app) -> FlaskClient:
    return gateway_app.test_client()


@pytest.fixture
def app_service_only_client(config) -> Iterator[FlaskClient]:
    for app in build(config):
        yield app.test_client()


def test_the_site_sees_the_visitor_not_the_proxies(gateway_client):
    seen = gateway_client.get("/_seen", headers=through_gateway()).json
    assert seen == {"remote_addr": CLIENT, "scheme": "https", "host": PUBLIC_HOST,
                    "is_secure": True, "home": f"https://{PUBLIC_HOST}/"}


def test_a_spoofed_forwarded_for_entry_is_not_trusted(gateway_client):
    seen = gateway_client.get("/_seen", headers=through_gateway("6.6.6.6, 10.0.0.1")).json
    assert seen["remote_addr"] == CLIENT


def test_behind_app_service_alone_a_visitor_cannot_choose_the_host(app_service_only_client):
    headers = {"Host": "app.azurewebsites.net", "X-Forwarded-For": f"6.6.6.6, {CLIENT}",
               "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    seen = app_service_only_client.get("/_seen", headers=headers).json
    assert seen["host"] == "app.azurewebsites.net"
    assert seen["remote_addr"] == CLIENT and seen["is_secure"] is True


@pytest.fixture
def review_path(run_sql) -> str:
    [(restaurant_id,)] = run_sql(
        "INSERT INTO restaurants (name, street_address) VALUES ('Gateway Grill', '1 A') "
        "RETURNING id"
    )
    return f"/restaurants/{restaurant_id}/reviews"


REVIEW = {"reviewer_name": "Ann", "rating": "4", "review_text": "fine"}


def test_review_form_works_over_https_through_the_gateway(gateway_client, review_path,
                                                          run_sql):
    # Without Sec-Fetch-Site (an older browser), Origin must name the host the visitor asked
    # for: after ProxyFix that is the public host, not the one the gateway sent.
    accepted = gateway_client.post(review_path, data=REVIEW, headers={
        **through_gateway(), "Origin": f"https://{PUBLIC_HOST}"})

    assert accepted.status_code == 303, accepted.text
    page = review_path.removesuffix("/reviews")
    assert accepted.headers["Location"] in (page, f"https://{PUBLIC_HOST}{page}")
    assert run_sql("SELECT reviewer_name FROM reviews") == [("Ann",)]


@pytest.mark.parametrize("origin", [f"https://{BACKEND_HOST}", "https://evil.example"],
                         ids=["the app's own host name", "another site"])
def test_a_review_through_the_gateway_from_another_origin_is_refused(gateway_client,
                                                                     review_path, run_sql,
                                                                     origin):
    # Only the gateway talks to the app by its own host name: a page there is not the site.
    refused = gateway_client.post(review_path, data=REVIEW,
                                  headers={**through_gateway(), "Origin": origin})

    assert refused.status_code == 403
    assert "Form sent from another website" in refused.text
    assert run_sql("SELECT count(*) FROM reviews") == [(0,)]


def test_behind_app_service_alone_a_forwarded_host_cannot_make_an_origin_pass(
        app_service_only_client, review_path, run_sql):
    # X-Forwarded-Host is not trusted there, so naming evil.example in both does not pass.
    headers = {"Host": "app.azurewebsites.net", "X-Forwarded-For": CLIENT,
               "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
               "Origin": "https://evil.example"}

    refused = app_service_only_client.post(review_path, data=REVIEW, headers=headers)

    assert refused.status_code == 403
    assert run_sql("SELECT count(*) FROM reviews") == [(0,)]


def test_session_cookie_is_secure_and_host_only_behind_the_gateway(gateway_client):
    response = gateway_client.post(
        "/restaurants/new", data={"name": "Cookie Corner", "street_address": "1"},
        headers={**through_gateway(), "Origin": f"https://{PUBLIC_HOST}"})
    assert response.status_code == 303
    cookie = next(value for value in response.headers.getlist("Set-Cookie")
                  if value.startswith("session="))
    assert "Secure" in cookie and "HttpOnly" in cookie
    # No Domain attribute: the browser binds it to the public host it asked for.
    assert "Domain=" not in cookie
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


@pytest.mark.parametrize("value", ["0", "3", "two", "-1"])
def test_trusted_proxy_hops_must_be_one_or_two(value):
    env = {"SECRET_KEY": "a-very-long-secret-key-for-tests",
           "DATABASE_URL": "postgresql://app:pw@db.example/reviews",
           "AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
           "TRUSTED_PROXY_HOPS": value}
    with pytest.raises(ConfigError, match=r"TRUSTED_PROXY_HOPS must be"):
        Settings.from_mapping(env)


def test_trusted_proxy_hops_defaults_to_app_service_alone():
    env = {"SECRET_KEY": "a-very-long-secret-key-for-tests",
           "DATABASE_URL": "postgresql://app:pw@db.example/reviews",
           "AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}
    assert Settings.from_mapping(env).trusted_proxy_hops == 1
    assert Settings.from_mapping({**env, "TRUSTED_PROXY_HOPS": " 2 "}).trusted_proxy_hops == 2
