"""Settings from the environment: validated up front, errors name the variable, no secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask

import webapp
from webapp import create_app
from webapp.config import (
    DEFAULT_MAX_PHOTO_BYTES,
    KNOBS,
    ConfigError,
    RecordingEnvironment,
    Settings,
    knob_table,
)
from webapp.photos import CachedPhoto

SECRET = "a-very-long-secret-key-for-tests"  # noqa: S105
LOCAL = {
    "SECRET_KEY": SECRET,
    "DATABASE_URL": "postgresql://app:pa55word@db.example:5433/reviews",
    "AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
}
AZURE = {
    "SECRET_KEY": SECRET,
    "AZURE_POSTGRESQL_HOST": "server.postgres.database.azure.com",
    "AZURE_POSTGRESQL_DATABASE": "reviews",
    "AZURE_POSTGRESQL_USER": "app-identity",
    "AZURE_STORAGE_ACCOUNT_URL": "https://account.blob.core.windows.net/",
}


def settings(base: dict, **changes) -> Settings:
    env = {**base, **changes}
    return Settings.from_mapping({key: value for key, value in env.items() if value is not None})


def test_local_shortcut_settings_and_defaults():
    result = settings(LOCAL)
    assert result.database.use_entra_token is False
    # psycopg2, the only driver installed, is chosen for a plain postgresql:// URL.
    assert result.database.url.drivername == "postgresql+psycopg2"
    assert result.database.url.port == 5433
    assert result.storage.connection_string == "UseDevelopmentStorage=true"
    assert result.storage.uses_credential is False
    assert result.storage.container == "photos"
    assert result.max_photo_bytes == DEFAULT_MAX_PHOTO_BYTES == 8 * 1024 * 1024
    assert result.appinsights_connection_string is None


def test_azure_settings_build_a_passwordless_url_with_tls_required():
    result = settings(AZURE)
    url = result.database.url
    assert result.database.use_entra_token is True
    assert (url.host, url.port, url.database, url.username) == (
        "server.postgres.database.azure.com", 5432, "reviews", "app-identity",
    )
    assert url.password is None
    assert url.query == {"sslmode": "require"}
    assert url.drivername == "postgresql+psycopg2"
    assert result.storage.account_url == "https://account.blob.core.windows.net"
    assert result.storage.uses_credential is True


@pytest.mark.parametrize(
    ("base", "changes", "named"),
    [
        (LOCAL, {"SECRET_KEY": None}, "SECRET_KEY is required"),
        (LOCAL, {"SECRET_KEY": "   "}, "SECRET_KEY is required"),
        (LOCAL, {"SECRET_KEY": "short"}, "SECRET_KEY is too short"),
        (LOCAL, {"DATABASE_URL": None}, "No database configured"),
        (LOCAL, {"DATABASE_URL": "mysql://u:p@h/db"}, "DATABASE_URL must point to PostgreSQL"),
        (LOCAL, {"DATABASE_URL": "postgresql://u:p@h:5432/"}, "DATABASE_URL must name a database"),
        (LOCAL, {"AZURE_POSTGRESQL_HOST": "h"}, "Both DATABASE_URL and AZURE_POSTGRESQL_HOST"),
        (AZURE, {"AZURE_POSTGRESQL_USER": None}, "AZURE_POSTGRESQL_USER is required"),
        (AZURE, {"AZURE_POSTGRESQL_DATABASE": ""}, "AZURE_POSTGRESQL_DATABASE is required"),
        (AZURE, {"AZURE_POSTGRESQL_PORT": "abc"}, "AZURE_POSTGRESQL_PORT must be a whole number"),
        (AZURE, {"AZURE_POSTGRESQL_PORT": "70000"}, "AZURE_POSTGRESQL_PORT must be a TCP port"),
        (AZURE, {"AZURE_POSTGRESQL_SSLMODE": "on"}, "AZURE_POSTGRESQL_SSLMODE must be one of"),
        (AZURE, {"AZURE_STORAGE_ACCOUNT_URL": "http://acct.blob.core.windows.net"},
         "AZURE_STORAGE_ACCOUNT_URL must be an https:// URL"),
        (AZURE, {"AZURE_STORAGE_CONNECTION_STRING": "A=b"},
         "Both AZURE_STORAGE_ACCOUNT_URL and AZURE_STORAGE_CONNECTION_STRING"),
        (LOCAL, {"AZURE_STORAGE_CONNECTION_STRING": None}, "No blob storage configured"),
        (LOCAL, {"AZURE_STORAGE_CONNECTION_STRING": "garbage"},
         "AZURE_STORAGE_CONNECTION_STRING is not a connection string"),
        (LOCAL, {"AZURE_STORAGE_CONTAINER": "Photos_2"}, "AZURE_STORAGE_CONTAINER must be"),
        (LOCAL, {"MAX_PHOTO_BYTES": "0"}, "MAX_PHOTO_BYTES must be greater than zero"),
        (LOCAL, {"MAX_PHOTO_BYTES": "8MB"}, "MAX_PHOTO_BYTES must be a whole number"),
        (LOCAL, {"HOME_PAGE_CACHE_SECONDS": "-1"}, "HOME_PAGE_CACHE_SECONDS must be zero or"),
        (LOCAL, {"HOME_PAGE_CACHE_SECONDS": "inf"}, "HOME_PAGE_CACHE_SECONDS must be zero or"),
        (LOCAL, {"HOME_PAGE_CACHE_SECONDS": "2s"},
         "HOME_PAGE_CACHE_SECONDS must be a number of seconds"),
        (LOCAL, {"DETAILS_PAGE_CACHE_SECONDS": "-0.5"},
         "DETAILS_PAGE_CACHE_SECONDS must be zero or"),
        (LOCAL, {"DETAILS_PAGE_CACHE_SECONDS": "soon"},
         "DETAILS_PAGE_CACHE_SECONDS must be a number of seconds"),
    ],
)
def test_bad_settings_are_refused_with_the_variable_named(base, changes, named):
    with pytest.raises(ConfigError, match=named):
        settings(base, **changes)


@pytest.mark.parametrize(
    "secret_url", ["postgresql://app:hunter2-secret@:::bad", "not a url hunter2-secret"]
)
def test_malformed_database_url_error_does_not_echo_the_password(secret_url):
    with pytest.raises(ConfigError) as error:
        settings(LOCAL, DATABASE_URL=secret_url)
    assert "DATABASE_URL" in str(error.value)
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize("reference", [
    "@Microsoft.KeyVault(SecretUri=https://kv-rr-dev.vault.azure.net/secrets/flask-secret-key)",
    "@microsoft.keyvault(VaultName=kv-rr-dev;SecretName=flask-secret-key)",
])
def test_an_unresolved_key_vault_reference_is_refused_without_echoing_it(reference):
    with pytest.raises(ConfigError, match="SECRET_KEY is an unresolved Key Vault reference") \
            as error:
        settings(AZURE, SECRET_KEY=reference)
    assert "kv-rr-dev" not in str(error.value)
    assert "flask-secret-key" not in str(error.value)


def test_a_resolved_secret_that_mentions_key_vault_is_accepted():
    value = "generated-value-not-a-reference-@Microsoft.KeyVault("
    assert settings(AZURE, SECRET_KEY=value).secret_key == value


def test_create_app_refuses_to_start_on_an_unresolved_reference(monkeypatch):
    for name in ("DATABASE_URL", "AZURE_STORAGE_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    for name, value in AZURE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SECRET_KEY", "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/"
                                     "secrets/flask-secret-key)")
    with pytest.raises(ConfigError, match="SECRET_KEY is an unresolved Key Vault reference"):
        create_app()
def test_the_psycopg2_spelling_is_kept_as_it_is(caplog):
    url = "postgresql+psycopg2://app:pa55word@db.example/reviews"
    result = settings(LOCAL, DATABASE_URL=url)
    assert result.database.url.render_as_string(hide_password=False) == url
    assert caplog.records == []


def test_the_psycopg3_spelling_is_mapped_to_psycopg2_with_a_logged_message(caplog):
    result = settings(LOCAL, DATABASE_URL="postgresql+psycopg://app:hunter2-secret@db/reviews")
    url = result.database.url
    assert url.drivername == "postgresql+psycopg2"
    assert (url.username, url.password, url.host, url.database) == (
        "app", "hunter2-secret", "db", "reviews",
    )
    [record] = caplog.records
    assert record.levelname == "WARNING"
    assert "psycopg 3" in record.getMessage() and "postgresql://" in record.getMessage()
    assert "hunter2" not in record.getMessage()


@pytest.mark.parametrize("driver", ["asyncpg", "pg8000", "psycopg2cffi"])
def test_another_postgresql_driver_is_refused_by_name(driver):
    with pytest.raises(ConfigError, match=f"driver '{driver}'.*postgresql://") as error:
        settings(LOCAL, DATABASE_URL=f"postgresql+{driver}://app:hunter2-secret@db/reviews")
    assert "hunter2" not in str(error.value)


def test_create_app_reads_the_environment_when_no_test_config(monkeypatch):
    for name in ("DATABASE_URL", "AZURE_POSTGRESQL_HOST", "AZURE_STORAGE_ACCOUNT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")
    with pytest.raises(ConfigError, match="No database configured"):
        create_app()

    monkeypatch.setenv("DATABASE_URL", LOCAL["DATABASE_URL"])
    monkeypatch.setenv("MAX_PHOTO_BYTES", "1048576")
    app = create_app()
    assert app.config["SECRET_KEY"] == SECRET
    assert app.extensions["settings"].max_photo_bytes == 1048576
    assert app.config["MAX_CONTENT_LENGTH"] > 1048576
    app.extensions["db_engine"].dispose()


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"PHOTO_DECODE_MEMORY_MIB": "0"}, "PHOTO_DECODE_MEMORY_MIB must be greater than zero"),
        ({"PHOTO_DECODE_MEMORY_MIB": "1GB"}, "PHOTO_DECODE_MEMORY_MIB must be a whole number"),
        ({"PHOTO_DECODE_WAIT_SECONDS": "-1"}, "PHOTO_DECODE_WAIT_SECONDS must be zero or"),
    ],
)
def test_photo_decode_budget_settings_default_for_b1_and_refuse_bad_values(changes, named):
    defaults = settings(LOCAL)
    assert defaults.photo_decode_memory_bytes == 192 * 1024 * 1024
    assert defaults.photo_decode_wait_seconds == 5.0
    assert settings(LOCAL, PHOTO_DECODE_MEMORY_MIB="512").photo_decode_memory_bytes == 512 << 20
    with pytest.raises(ConfigError, match=named):
        settings(LOCAL, **changes)


# one settings channel ------------------------------------------------------------------------

WEBAPP = Path(webapp.__file__).parent
README = WEBAPP / "README.md"
# Documented in the README's table, read by others than Settings.
READ_ELSEWHERE = {
    "PHOTO_SWEEP_INTERVAL_MINUTES",  # release/startup.py
    "AZURE_CLIENT_ID",  # DefaultAzureCredential
}


def variables_settings_read() -> set[str]:
    asked = set()
    for base in (LOCAL, AZURE):
        environment = RecordingEnvironment(base)
        Settings.from_mapping(environment)
        asked |= environment.read
    return asked


def test_the_readme_knob_table_is_rendered_from_the_knobs_table():
    text = README.read_text()
    start = text.index("<!-- knobs: generated from webapp/config.py KNOBS -->\n")
    table = text[text.index("\n", start) + 1:text.index("\n<!-- end of knobs -->")]
    assert table == knob_table()


def test_every_variable_settings_reads_is_documented_and_every_documented_one_is_read():
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", README.read_text(), re.MULTILINE))
    read = variables_settings_read()
    assert set(KNOBS) <= read
    assert read == documented - READ_ELSEWHERE


def test_no_module_reads_a_setting_of_its_own_from_flask_config():
    """Only what Flask and Flask-WTF own is read from app.config; every other setting comes
    typed from Settings (config.py), so no module keeps a default of its own."""
    reads = set()
    for path in [*WEBAPP.rglob("*.py"), *WEBAPP.rglob("*.html")]:
        source = path.read_text()
        reads |= {(path.name, key) for key in re.findall(
            r"config(?:\.get\(\s*|\[\s*|\.)[\"']?([A-Z][A-Z0-9_]+)", source)}
    own = {(name, key) for name, key in reads
           if key not in Flask.default_config and not key.startswith("WTF_")}
    assert reads  # the scan finds the Flask-owned reads, so it would find others
    assert own == set()


def test_an_unknown_test_setting_is_refused_by_name():
    with pytest.raises(ConfigError, match="Unknown settings: PHOTO_CACHE_MAX_BYTE "):
        create_app({**LOCAL, "PHOTO_CACHE_MAX_BYTE": 10, "TESTING": True})


@pytest.mark.parametrize(("name", "value", "message"), [
    ("DB_POOL_SIZE", "0", "DB_POOL_SIZE must be greater than zero"),
    ("STORAGE_RETRY_TOTAL", "-1", "STORAGE_RETRY_TOTAL must be zero or more"),
    ("STORAGE_READ_TIMEOUT_SECONDS", "0", "STORAGE_READ_TIMEOUT_SECONDS must be a positive"),
    ("DB_POOL_TIMEOUT_SECONDS", "soon", "DB_POOL_TIMEOUT_SECONDS must be a number of seconds"),
])
def test_a_malformed_knob_is_refused_by_name(name, value, message):
    with pytest.raises(ConfigError, match=message):
        settings(LOCAL, **{name: value})


def filled(cache, entries: int, value) -> int:
    for key in range(entries):
        cache.put(key, value)
    return len(cache)


@pytest.fixture
def built(tmp_path):
    """built(**knobs) -> an app (not connected to anything) built from LOCAL and the knobs."""
    apps = []

    def build(**knobs):
        app = create_app({**LOCAL, "PAGE_CACHE_LOG_PATH": str(tmp_path / "log"), **knobs})
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["db_engine"].dispose()
        app.extensions["photo_store"].close()


@pytest.mark.parametrize(("knobs", "observed", "expected"), [
    ({"DB_POOL_SIZE": "3"}, lambda app: app.extensions["db_engine"].pool.size(), 3),
    ({}, lambda app: app.extensions["db_engine"].pool.timeout(), 1.0),  # a third of 3 s
    ({"DB_POOL_TIMEOUT_SECONDS": "1.5"},
     lambda app: app.extensions["db_engine"].pool.timeout(), 1.5),
    ({"LISTING_CACHE_MAX_ENTRIES": "3"},
     lambda app: filled(app.extensions["listing_cache"], 10, "page"), 3),
    ({"DETAILS_CACHE_MAX_ENTRIES": "4"},
     lambda app: filled(app.extensions["details_cache"], 10, "page"), 4),
    ({"PHOTO_CACHE_MAX_ENTRIES": "2"},
     lambda app: filled(app.extensions["photo_cache"], 10, CachedPhoto("image/png", b"x")), 2),
])
def test_a_knob_set_like_any_setting_drives_the_app(built, knobs, observed, expected):
    assert observed(built(HOME_PAGE_CACHE_SECONDS="60", DETAILS_PAGE_CACHE_SECONDS="60",
                          **knobs)) == expected


def test_the_page_cache_log_is_where_its_knob_says(built, tmp_path):
    built(PAGE_CACHE_LOG_PATH=str(tmp_path / "elsewhere.changes"))
    assert (tmp_path / "elsewhere.changes").exists()
