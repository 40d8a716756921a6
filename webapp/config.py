"""Settings from environment variables (the contract in the README), validated up front.

Every error names the variable at fault and says what a valid value looks like. Values are
never echoed back: several of these variables hold secrets (SECRET_KEY, passwords inside
DATABASE_URL, account keys inside AZURE_STORAGE_CONNECTION_STRING).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_CONTAINER = "photos"
DEFAULT_MAX_PHOTO_BYTES = 8 * 1024 * 1024
# Room for the text fields and multipart framing on top of the largest accepted photo.
FORM_OVERHEAD_BYTES = 256 * 1024
# A body is read up to this many photo limits (forms.py keeps only one limit's worth of it), so
# the text sent with a phone photo somewhat over the limit is kept and shown again.
OVERSIZED_PHOTO_FACTOR = 4
# How long one process may serve a home page's listing, or a restaurant's reviews, without
# asking PostgreSQL again (the staleness window for changes made through other instances).
DEFAULT_HOME_PAGE_CACHE_SECONDS = 2.0
DEFAULT_DETAILS_PAGE_CACHE_SECONDS = 2.0
# How long a request may wait on PostgreSQL and Blob Storage in all before it gets the 503 page
# (webapp/budget.py). At least the PostgreSQL connect timeout (libpq's minimum, 2 s) plus the
# time to answer; at most what a visitor would wait for a page.
DEFAULT_REQUEST_BUDGET_SECONDS = 3.0
MIN_REQUEST_BUDGET_SECONDS = 2.5
MAX_REQUEST_BUDGET_SECONDS = 30.0
# Memory one worker process may spend decoding photos at once (webapp/images.py). Sized for
# the smallest plan, B1 (1.75 GB for the instance): startup.py runs 3 gthread workers of 4
# threads there; each worker idles at about 110 MB and holds up to 4 uploads of 8 MiB, so with
# this budget a worker stays under 450 MB (the `make bench` memory row's target) and three of
# them leave room for gunicorn's master and the platform. A larger plan may raise it.
DEFAULT_PHOTO_DECODE_MEMORY_MIB = 192
# How long an upload waits for room in that budget before the visitor gets a 503 to retry.
DEFAULT_PHOTO_DECODE_WAIT_SECONDS = 5.0
DEFAULT_POSTGRES_PORT = 5432
DEFAULT_SSLMODE = "require"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# A Flask secret shorter than this is guessable; Key Vault generated values are far longer.
MIN_SECRET_KEY_LENGTH = 16
# App Service hands an app the reference string itself when it cannot resolve a Key Vault
# reference (no access yet, vault unreachable): signing sessions with that public text would make
# every session forgeable, so such a value is refused. The prefix match is case-insensitive like
# App Service's own parsing of the syntax.
KEY_VAULT_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\(", re.IGNORECASE)
# Reverse proxies in front of the site: 1 = App Service's front end alone; 2 = an Application
# Gateway in front of it (infra/gateway.py). See webapp/security.py for what each one trusts.
DEFAULT_TRUSTED_PROXY_HOPS = 1
TRUSTED_PROXY_HOPS = (1, 2)
# Blob container naming rules from the Storage REST API.
CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
# psycopg2 is the only PostgreSQL driver installed (webapp/requirements.txt).
DATABASE_DRIVERNAME = "postgresql+psycopg2"
# psycopg 3's spelling, which this site used before: mapped so existing settings keep working.
FORMER_DRIVERNAME = "postgresql+psycopg"

logger = logging.getLogger(__name__)


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
class PoolSettings:
    """The PostgreSQL connection pool (webapp/db.py)."""

    size: int
    max_overflow: int
    recycle_seconds: int
    connect_timeout_seconds: int
    # None: a third of the request budget.
    timeout_seconds: float | None


@dataclass(frozen=True)
class StorageClientSettings:
    """Retries and per-attempt timeouts of the Blob Storage client (webapp/storage.py)."""

    retry_total: int
    connection_timeout_seconds: float
    read_timeout_seconds: float


@dataclass(frozen=True)
class PageCacheSettings:
    """The rendered-page caches and their change log (webapp/page_cache.py)."""

    listing_ttl_seconds: float
    details_ttl_seconds: float
    listing_max_entries: int
    listing_max_bytes: int
    details_max_entries: int
    details_max_bytes: int
    # None: a file in the temp folder named after the site's data (page_cache.default_log_path).
    log_path: Path | None


@dataclass(frozen=True)
class PhotoCacheSettings:
    """The per-process photo byte cache (webapp/photos.py)."""

    max_bytes: int
    max_entries: int
    max_photo_bytes: int


@dataclass(frozen=True)
class Settings:
    secret_key: str
    database: DatabaseSettings
    pool: PoolSettings
    storage: StorageSettings
    storage_client: StorageClientSettings
    max_photo_bytes: int
    appinsights_connection_string: str | None
    page_cache: PageCacheSettings
    photo_cache: PhotoCacheSettings
    restaurants_per_page: int
    request_budget_seconds: float
    trusted_proxy_hops: int
    photo_decode_memory_bytes: int
    photo_decode_wait_seconds: float

    @classmethod
    def from_mapping(cls, env: Mapping[str, object]) -> Settings:
        return cls(
            secret_key=_secret_key(env),
            database=_database(env),
            pool=PoolSettings(
                size=_knob(env, "DB_POOL_SIZE"),
                max_overflow=_knob(env, "DB_MAX_OVERFLOW"),
                recycle_seconds=_knob(env, "DB_POOL_RECYCLE_SECONDS"),
                connect_timeout_seconds=_knob(env, "DB_CONNECT_TIMEOUT_SECONDS"),
                timeout_seconds=_knob(env, "DB_POOL_TIMEOUT_SECONDS"),
            ),
            storage=_storage(env),
            storage_client=StorageClientSettings(
                retry_total=_knob(env, "STORAGE_RETRY_TOTAL"),
                connection_timeout_seconds=_knob(env, "STORAGE_CONNECTION_TIMEOUT_SECONDS"),
                read_timeout_seconds=_knob(env, "STORAGE_READ_TIMEOUT_SECONDS"),
            ),
            max_photo_bytes=_positive_int(env, "MAX_PHOTO_BYTES", DEFAULT_MAX_PHOTO_BYTES),
            appinsights_connection_string=_get(env, "APPLICATIONINSIGHTS_CONNECTION_STRING"),
            page_cache=PageCacheSettings(
                listing_ttl_seconds=_seconds(
                    env, "HOME_PAGE_CACHE_SECONDS", DEFAULT_HOME_PAGE_CACHE_SECONDS
                ),
                details_ttl_seconds=_seconds(
                    env, "DETAILS_PAGE_CACHE_SECONDS", DEFAULT_DETAILS_PAGE_CACHE_SECONDS
                ),
                listing_max_entries=_knob(env, "LISTING_CACHE_MAX_ENTRIES"),
                listing_max_bytes=_knob(env, "LISTING_CACHE_MAX_BYTES"),
                details_max_entries=_knob(env, "DETAILS_CACHE_MAX_ENTRIES"),
                details_max_bytes=_knob(env, "DETAILS_CACHE_MAX_BYTES"),
                log_path=_knob(env, "PAGE_CACHE_LOG_PATH"),
            ),
            photo_cache=PhotoCacheSettings(
                max_bytes=_knob(env, "PHOTO_CACHE_MAX_BYTES"),
                max_entries=_knob(env, "PHOTO_CACHE_MAX_ENTRIES"),
                max_photo_bytes=_knob(env, "PHOTO_CACHE_MAX_PHOTO_BYTES"),
            ),
            restaurants_per_page=_knob(env, "RESTAURANTS_PER_PAGE"),
            request_budget_seconds=_request_budget(env),
            trusted_proxy_hops=_proxy_hops(env),
            photo_decode_memory_bytes=_positive_int(
                env, "PHOTO_DECODE_MEMORY_MIB", DEFAULT_PHOTO_DECODE_MEMORY_MIB
            ) * 1024 * 1024,
            photo_decode_wait_seconds=_seconds(
                env, "PHOTO_DECODE_WAIT_SECONDS", DEFAULT_PHOTO_DECODE_WAIT_SECONDS
            ),
        )


class RecordingEnvironment(dict):
    """An environment that notes the variables read from it (`read`)."""

    def __init__(self, values: Mapping[str, object]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


def current_settings() -> Settings:
    """The settings the current app was built with (create_app keeps them in its extensions)."""
    return current_app.extensions["settings"]


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
    if KEY_VAULT_REFERENCE.match(key):
        raise ConfigError(
            "SECRET_KEY is an unresolved Key Vault reference (@Microsoft.KeyVault(...)): App "
            "Service could not read the secret, usually because the identity's Key Vault Secrets "
            "User grant has not applied yet or the vault is unreachable. Check the app's "
            "Key Vault reference status, then restart the app."
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


def _count(env: Mapping[str, object], name: str, default: int) -> int:
    value = _number(env, name, default, int, "a whole number")
    if value < 0:
        raise ConfigError(f"{name} must be zero or more.")
    return value


def _positive_seconds(
    env: Mapping[str, object], name: str, default: float | None
) -> float | None:
    value = _number(env, name, default, float, "a number of seconds")
    if value is not None and not 0 < value < float("inf"):
        raise ConfigError(f"{name} must be a positive number of seconds.")
    return value


def _path(env: Mapping[str, object], name: str, default: Path | None) -> Path | None:
    value = _get(env, name)
    return default if value is None else Path(value)


def _seconds(env: Mapping[str, object], name: str, default: float) -> float:
    """A duration in seconds; 0 is allowed and means 'off'."""
    value = _number(env, name, default, float, "a number of seconds")
    if not 0 <= value < float("inf"):
        raise ConfigError(f"{name} must be zero or a positive number of seconds.")
    return value


def _request_budget(env: Mapping[str, object]) -> float:
    name = "REQUEST_BUDGET_SECONDS"
    value = _number(env, name, DEFAULT_REQUEST_BUDGET_SECONDS, float, "a number of seconds")
    if not MIN_REQUEST_BUDGET_SECONDS <= value <= MAX_REQUEST_BUDGET_SECONDS:
        raise ConfigError(
            f"{name} must be between {MIN_REQUEST_BUDGET_SECONDS:g} and "
            f"{MAX_REQUEST_BUDGET_SECONDS:g} seconds (it must fit PostgreSQL's 2 s connect "
            "timeout and still be a wait a visitor accepts)."
        )
    return value


def _proxy_hops(env: Mapping[str, object]) -> int:
    hops = _number(env, "TRUSTED_PROXY_HOPS", DEFAULT_TRUSTED_PROXY_HOPS, int, "a whole number")
    if hops not in TRUSTED_PROXY_HOPS:
        raise ConfigError(
            "TRUSTED_PROXY_HOPS must be 1 (App Service alone) or 2 (an Application Gateway in "
            "front of App Service)."
        )
    return hops


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
        "(postgresql://user:password@host:port/db) or AZURE_POSTGRESQL_HOST, "
        "AZURE_POSTGRESQL_DATABASE and AZURE_POSTGRESQL_USER."
    )


def _database_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        # The parser's message may repeat the value, which may contain a password.
        raise ConfigError(
            "DATABASE_URL is not a valid URL: expected "
            "postgresql://user:password@host:port/db."
        ) from None
    if url.get_backend_name() != "postgresql":
        raise ConfigError("DATABASE_URL must point to PostgreSQL (postgresql://...).")
    if not url.database:
        raise ConfigError("DATABASE_URL must name a database (.../db at the end).")
    return url.set(drivername=_database_drivername(url.drivername))


def _database_drivername(drivername: str) -> str:
    """psycopg2 for `postgresql://` and `+psycopg2`; psycopg 3's `+psycopg` is mapped to it."""
    if drivername == FORMER_DRIVERNAME:
        logger.warning(
            "DATABASE_URL names the psycopg 3 driver (postgresql+psycopg://); the site uses "
            "psycopg2 and connects with it. Write postgresql:// to silence this message."
        )
    elif drivername not in ("postgresql", DATABASE_DRIVERNAME):
        driver = drivername.partition("+")[2]
        raise ConfigError(
            f"DATABASE_URL names the PostgreSQL driver {driver!r}, which the site does not "
            "use: write postgresql://... (the site connects with psycopg2)."
        )
    return DATABASE_DRIVERNAME


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
        DATABASE_DRIVERNAME,
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


@dataclass(frozen=True)
class Knob:
    """A tuning setting with a default in code: one row of KNOBS."""

    name: str
    parse: Callable[[Mapping[str, object], str, object], object]
    default: object
    meaning: str

    def default_text(self) -> str:
        return "–" if self.default is None else f"`{self.default}`"


MIB = 1024 * 1024
# Tuning settings, each read by Settings.from_mapping through _knob; webapp/README.md's table of
# them is rendered from this one (knob_table, checked by tests/webapp/test_config.py).
KNOBS = {knob.name: knob for knob in (
    Knob("DB_POOL_SIZE", _positive_int, 5,
         "PostgreSQL connections each worker keeps open; request threads keep up to one "
         "less of them checked out for their reads."),
    Knob("DB_MAX_OVERFLOW", _count, 5, "Extra connections a worker may open beyond the pool."),
    # Azure closes idle connections; recycling early avoids handing out dead ones.
    Knob("DB_POOL_RECYCLE_SECONDS", _positive_int, 30 * 60,
         "Age at which a pooled connection is replaced (Azure closes idle ones)."),
    # libpq's smallest connect timeout (it rounds anything lower up to 2 s); the request
    # budget is at least this plus the time to answer.
    Knob("DB_CONNECT_TIMEOUT_SECONDS", _positive_int, 2,
         "libpq connect timeout (its minimum is 2)."),
    Knob("DB_POOL_TIMEOUT_SECONDS", _positive_seconds, None,
         "Wait for a free pooled connection; unset: a third of `REQUEST_BUDGET_SECONDS`."),
    # One retry heals a pooled keep-alive connection that died while storage restarted; more
    # would not fit the request budget (webapp/budget.py).
    Knob("STORAGE_RETRY_TOTAL", _count, 1, "Blob Storage retries per call."),
    # Per attempt, shortened further to what is left of the request's budget.
    Knob("STORAGE_CONNECTION_TIMEOUT_SECONDS", _positive_seconds, 2,
         "Blob Storage connect timeout per attempt (cut to the budget left)."),
    Knob("STORAGE_READ_TIMEOUT_SECONDS", _positive_seconds, 3,
         "Blob Storage read timeout per attempt (cut to the budget left)."),
    Knob("RESTAURANTS_PER_PAGE", _positive_int, 20, "Restaurants on a home page."),
    # Pages are few in practice; the bounds keep probes of many ?page=N values from growing
    # memory.
    Knob("LISTING_CACHE_MAX_ENTRIES", _positive_int, 64,
         "Home page listings a worker keeps (least recently used dropped)."),
    Knob("LISTING_CACHE_MAX_BYTES", _positive_int, 4 * MIB,
         "Bytes of home page listings a worker keeps."),
    # One entry per restaurant visited within the time-to-live; a page of 20 reviews is ~10 KB.
    Knob("DETAILS_CACHE_MAX_ENTRIES", _positive_int, 512,
         "Restaurants' details a worker keeps (least recently used dropped)."),
    Knob("DETAILS_CACHE_MAX_BYTES", _positive_int, 16 * MIB,
         "Bytes of restaurants' details a worker keeps."),
    Knob("PAGE_CACHE_LOG_PATH", _path, None,
         "The page caches' change log; unset: one in the temp folder per user and site data."),
    # Per process: gunicorn runs several. A phone photo scaled for the web is 100-500 KB.
    Knob("PHOTO_CACHE_MAX_BYTES", _positive_int, 32 * MIB, "Bytes of photos a worker keeps."),
    Knob("PHOTO_CACHE_MAX_ENTRIES", _positive_int, 1024, "Photos a worker keeps."),
    Knob("PHOTO_CACHE_MAX_PHOTO_BYTES", _count, MIB,
         "Largest photo kept in that cache; larger ones are streamed every time."),
)}


def _knob(env: Mapping[str, object], name: str):
    knob = KNOBS[name]
    return knob.parse(env, name, knob.default)


def knob_table() -> str:
    """The Markdown table of KNOBS that webapp/README.md holds."""
    rows = [f"| `{knob.name}` | {knob.default_text()} | {knob.meaning} |"
            for knob in KNOBS.values()]
    return "\n".join(["| Variable | Default | Meaning |", "|---|---|---|", *rows])


def request_body_limit(max_photo_bytes: int) -> int:
    """The largest request body the site reads (Flask's MAX_CONTENT_LENGTH); a proxy in front
    must admit at least this much, or its refusal replaces the site's own (which keeps the text)."""
    return max_photo_bytes * OVERSIZED_PHOTO_FACTOR + FORM_OVERHEAD_BYTES
