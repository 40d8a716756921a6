"""Settings from environment variables (the contract in the README), validated up front.

Every error names the variable at fault and says what a valid value looks like. Values are
never echoed back: several of these variables hold secrets (SECRET_KEY, passwords inside
DATABASE_URL, account keys inside AZURE_STORAGE_CONNECTION_STRING).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_CONTAINER = "photos"
DEFAULT_MAX_PHOTO_BYTES = 8 * 1024 * 1024
# How long one process may serve a home page's listing, or a restaurant's reviews, without
# asking PostgreSQL again (the staleness window for changes made through other instances).
DEFAULT_HOME_PAGE_CACHE_SECONDS = 2.0
DEFAULT_DETAILS_PAGE_CACHE_SECONDS = 2.0
DEFAULT_POSTGRES_PORT = 5432
DEFAULT_SSLMODE = "require"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# A Flask secret shorter than this is guessable; Key Vault generated values are far longer.
MIN_SECRET_KEY_LENGTH = 16
# Blob container naming rules from the Storage REST API.
CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class DatabaseSettings:
    """Where PostgreSQL is and how to sign in.

    ``use_entra_token`` means the password of each new connection is a Microsoft Entra token
    (the managed identity path); otherwise the URL carries its own password (local shortcut).
    """

    url: URL
    use_entra_token: bool


@dataclass(frozen=True)
class StorageSettings:
    """Blob Storage: either an account URL (DefaultAzureCredential) or a connection string."""

    container: str
    account_url: str | None = None
    connection_string: str | None = None

    @property
    def uses_credential(self) -> bool:
        return self.account_url is not None


@dataclass(frozen=True)
class Settings:
    secret_key: str
    database: DatabaseSettings
    storage: StorageSettings
    max_photo_bytes: int
    appinsights_connection_string: str | None
    home_page_cache_seconds: float
    details_page_cache_seconds: float

    @classmethod
    def from_mapping(cls, env: Mapping[str, object]) -> Settings:
        return cls(
            secret_key=_secret_key(env),
            database=_database(env),
            storage=_storage(env),
            max_photo_bytes=_positive_int(env, "MAX_PHOTO_BYTES", DEFAULT_MAX_PHOTO_BYTES),
            appinsights_connection_string=_get(env, "APPLICATIONINSIGHTS_CONNECTION_STRING"),
            home_page_cache_seconds=_seconds(
                env, "HOME_PAGE_CACHE_SECONDS", DEFAULT_HOME_PAGE_CACHE_SECONDS
            ),
            details_page_cache_seconds=_seconds(
                env, "DETAILS_PAGE_CACHE_SECONDS", DEFAULT_DETAILS_PAGE_CACHE_SECONDS
            ),
        )


def _get(env: Mapping[str, object], name: str) -> str | None:
    """The stripped value, or None when unset or blank (App Service keeps empty settings)."""
    value = env.get(name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _secret_key(env: Mapping[str, object]) -> str:
    key = _get(env, "SECRET_KEY")
    if key is None:
        raise ConfigError(
            "SECRET_KEY is required: set it to a long random string (on App Service, a Key Vault "
            "reference). It is never generated per process, so sessions survive restarts."
        )
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            f"SECRET_KEY is too short: use at least {MIN_SECRET_KEY_LENGTH} characters."
        )
    return key


def _positive_int(env: Mapping[str, object], name: str, default: int) -> int:
    value = _number(env, name, default, int, "a whole number")
    if value <= 0:
        raise ConfigError(f"{name} must be greater than zero.")
    return value


def _seconds(env: Mapping[str, object], name: str, default: float) -> float:
    """A duration in seconds; 0 is allowed and means 'off'."""
    value = _number(env, name, default, float, "a number of seconds")
    if not 0 <= value < float("inf"):
        raise ConfigError(f"{name} must be zero or a positive number of seconds.")
    return value


def _number(env: Mapping[str, object], name: str, default, convert, kind: str):
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        return convert(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {kind}, got a non-numeric value.") from None


def _database(env: Mapping[str, object]) -> DatabaseSettings:
    url = _get(env, "DATABASE_URL")
    host = _get(env, "AZURE_POSTGRESQL_HOST")
    if url and host:
        raise ConfigError(
            "Both DATABASE_URL and AZURE_POSTGRESQL_HOST are set: use DATABASE_URL locally or "
            "the AZURE_POSTGRESQL_* settings (Entra token) in Azure, not both."
        )
    if url:
        return DatabaseSettings(url=_database_url(url), use_entra_token=False)
    if host:
        return DatabaseSettings(url=_entra_database_url(env, host), use_entra_token=True)
    raise ConfigError(
        "No database configured: set DATABASE_URL "
        "(postgresql+psycopg://user:password@host:port/db) or AZURE_POSTGRESQL_HOST, "
        "AZURE_POSTGRESQL_DATABASE and AZURE_POSTGRESQL_USER."
    )


def _database_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        # The parser's message may repeat the value, which may contain a password.
        raise ConfigError(
            "DATABASE_URL is not a valid URL: expected "
            "postgresql+psycopg://user:password@host:port/db."
        ) from None
    if url.get_backend_name() != "postgresql":
        raise ConfigError("DATABASE_URL must point to PostgreSQL (postgresql+psycopg://...).")
    if not url.database:
        raise ConfigError("DATABASE_URL must name a database (.../db at the end).")
    # psycopg 3 is the only driver installed; accept plain postgresql:// and pick it.
    return url.set(drivername="postgresql+psycopg")


def _entra_database_url(env: Mapping[str, object], host: str) -> URL:
    database = _get(env, "AZURE_POSTGRESQL_DATABASE")
    user = _get(env, "AZURE_POSTGRESQL_USER")
    for name, value in (("AZURE_POSTGRESQL_DATABASE", database), ("AZURE_POSTGRESQL_USER", user)):
        if value is None:
            raise ConfigError(f"{name} is required when AZURE_POSTGRESQL_HOST is set.")
    port = _positive_int(env, "AZURE_POSTGRESQL_PORT", DEFAULT_POSTGRES_PORT)
    if port > 65535:
        raise ConfigError("AZURE_POSTGRESQL_PORT must be a TCP port (1-65535).")
    sslmode = _get(env, "AZURE_POSTGRESQL_SSLMODE") or DEFAULT_SSLMODE
    if sslmode not in SSLMODES:
        raise ConfigError(f"AZURE_POSTGRESQL_SSLMODE must be one of {', '.join(SSLMODES)}.")
    return URL.create(
        "postgresql+psycopg",
        username=user,
        host=host,
        port=port,
        database=database,
        query={"sslmode": sslmode},
    )


def _storage(env: Mapping[str, object]) -> StorageSettings:
    container = _get(env, "AZURE_STORAGE_CONTAINER") or DEFAULT_CONTAINER
    if not CONTAINER_NAME.match(container):
        raise ConfigError(
            "AZURE_STORAGE_CONTAINER must be 3-63 lowercase letters, digits or single hyphens."
        )
    account_url = _get(env, "AZURE_STORAGE_ACCOUNT_URL")
    connection_string = _get(env, "AZURE_STORAGE_CONNECTION_STRING")
    if account_url and connection_string:
        raise ConfigError(
            "Both AZURE_STORAGE_ACCOUNT_URL and AZURE_STORAGE_CONNECTION_STRING are set: use the "
            "account URL (managed identity) in Azure or the connection string locally, not both."
        )
    if account_url:
        _check_account_url(account_url)
        return StorageSettings(container=container, account_url=account_url.rstrip("/"))
    if connection_string:
        if "=" not in connection_string:
            raise ConfigError(
                "AZURE_STORAGE_CONNECTION_STRING is not a connection string (Key=Value;...)."
            )
        return StorageSettings(container=container, connection_string=connection_string)
    raise ConfigError(
        "No blob storage configured: set AZURE_STORAGE_ACCOUNT_URL "
        "(https://<account>.blob.core.windows.net) or AZURE_STORAGE_CONNECTION_STRING."
    )


def _check_account_url(url: str) -> None:
    parts = urlsplit(url)
    # azure-core refuses to send bearer tokens over plain HTTP, so fail here with a clear message.
    if parts.scheme != "https" or not parts.netloc:
        raise ConfigError(
            "AZURE_STORAGE_ACCOUNT_URL must be an https:// URL such as "
            "https://<account>.blob.core.windows.net (tokens are only sent over TLS)."
        )
