"""Database lifecycle: the pooled engine, reads, per-request sessions, Entra tokens, migrations.

Two ways to sign in to PostgreSQL, chosen by settings (see config.py):
- DATABASE_URL carries a password (local development, tests);
- AZURE_POSTGRESQL_* names host, database and user, and the password of every NEW pooled
  connection is a Microsoft Entra token from the app's managed identity. A token baked into
  the URL at start-up would expire after about an hour and break every later connection.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import NamedTuple

import click
import psycopg2.errors
from alembic import command
from alembic.config import Config
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import ClientAuthenticationError
from flask import Flask, current_app, g
from flask.cli import with_appcontext
from sqlalchemy import URL, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import Pool, PoolProxiedConnection, QueuePool

from . import budget
from .config import PoolSettings, Settings

logger = logging.getLogger(__name__)

POSTGRES_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
# Refresh a cached token this long before it expires, so a connection opened just before
# expiry still gets a token that is valid while PostgreSQL checks it.
TOKEN_REFRESH_MARGIN_SECONDS = 5 * 60
# Any constant works as long as every instance uses the same one: it names the lock that
# serialises migrations when several instances start at once.
MIGRATION_LOCK_KEY = 0x52657669657773  # "Reviews"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# TCP keepalives find a connection whose peer vanished (host gone, NAT entry dropped) while
# it sits in the pool; libpq names, accepted by psycopg 2 and 3 alike.
KEEPALIVE_PARAMETERS = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
# Migrations may legitimately run longer than a request's statement_timeout.
NO_STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = 0"
# A request's COMMIT must reach PostgreSQL this long before the request gives up, so that a
# commit the server accepts is answered before the connection is cut (see
# webapp/migrations/versions/0002_commit_deadline.py).
COMMIT_RESERVE_SECONDS = 0.5
# connection_record.info key: the watchdog cut this connection's socket (see handle_error below).
CUT_BY_WATCHDOG = "cut_by_watchdog"
# Set while a request thread takes its reader from the pool (see ThreadReaders): that checkout
# neither pings nor arms the watchdog. A read finds a dead connection by itself and retries once
# (reads are idempotent), so the ping's round trip would only ever duplicate what the read's own
# round trip tells; each read arms the watchdog for itself. A context variable, because the pool
# calls the checkout listener with no word from the caller.
_TAKING_A_READER: ContextVar[bool] = ContextVar("taking_a_reader", default=False)
# How long a request thread keeps its reader checked out before handing it back to the pool, so
# that the pool's recycling and invalidation still reach it (never longer than
# DB_POOL_RECYCLE_SECONDS).
READER_HOLD_SECONDS = 60.0
# connection_record.info key: the names of the statements this connection has prepared.
_PREPARED = "prepared_statements"
_PYFORMAT_PARAMETER = re.compile(r"%\((\w+)\)s")
# session.info key: this transaction flushed or ran a statement that is not a plain SELECT.
_WROTE = "db_wrote"
STAMP_COMMIT_DEADLINE = text(
    "SELECT set_config('webapp.commit_deadline', "
    "(clock_timestamp() + make_interval(secs => :seconds))::text, true)"
)


class DatabaseTokenError(RuntimeError):
    """No Entra token could be obtained for PostgreSQL (treated as 'database unavailable')."""


class EntraTokenCache:
    """Hands out a PostgreSQL access token, asking the credential again only near expiry."""

    def __init__(
        self,
        credential: TokenCredential,
        scope: str = POSTGRES_SCOPE,
        refresh_margin_seconds: float = TOKEN_REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credential = credential
        self._scope = scope
        self._margin = refresh_margin_seconds
        self._clock = clock
        self._token: AccessToken | None = None
        # Pool threads may open connections at the same time; one token request is enough.
        self._lock = threading.Lock()

    def token(self, timeout: float | None = None) -> str:
        """The token; with `timeout`, waiting that long at most for another thread's fetch
        (DependencyTimeout after), so a hung identity endpoint cannot queue every request."""
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            raise budget.DependencyTimeout("PostgreSQL (Microsoft Entra token)")
        try:
            if self._needs_refresh():
                self._refresh()
            return self._token.token
        finally:
            self._lock.release()

    def _needs_refresh(self) -> bool:
        return self._token is None or self._token.expires_on - self._margin <= self._clock()

    def _refresh(self) -> None:
        try:
            self._token = self._fetch()
        except DatabaseTokenError:
            # The margin exists for exactly this: a token that is still valid keeps new
            # connections working while the identity endpoint is down; the next new
            # connection asks again, so a recovered endpoint is used at once.
            if self._token is None or self._token.expires_on <= self._clock():
                raise
            logger.warning("Entra token refresh failed; using the current token until it "
                           "expires", exc_info=True)

    def _fetch(self) -> AccessToken:
        try:
            return self._credential.get_token(self._scope)
        except ClientAuthenticationError as error:
            # The credential's message explains which sources it tried; it holds no secret.
            raise DatabaseTokenError(f"No Entra token for PostgreSQL: {error.message}") from error


def init_app(
    app: Flask, settings: Settings, credential: Callable[[], TokenCredential]
) -> None:
    """Create the app's engine (one pool per process) and register session cleanup and the CLI.

    ``credential`` is only called when the Entra path is configured.
    """
    engine = _create_engine(settings.database.url, settings.pool, settings.request_budget_seconds)
    watchdog = ConnectionWatchdog()
    _bound_checkouts_by_the_request_budget(engine, watchdog)
    _READERS[engine] = readers = ThreadReaders(
        watchdog, min(READER_HOLD_SECONDS, settings.pool.recycle_seconds))
    event.listen(engine, "engine_disposed", lambda _engine: readers.close_all())
    event.listen(engine, "invalidate", lambda *_args: readers.invalidated())
    if settings.database.use_entra_token:
        tokens = EntraTokenCache(credential())
        _use_token_as_password(engine, tokens)
        app.extensions["db_token_cache"] = tokens
    app.extensions["db_engine"] = engine
    sessions = sessionmaker(engine, expire_on_commit=False)
    app.extensions["db_flush_observers"] = observers = []
    _remember_writes(sessions, observers)
    event.listen(sessions, "before_commit", _stamp_commit_deadline)
    app.extensions["db_sessionmaker"] = sessions
    app.teardown_appcontext(_close_session)
    app.cli.add_command(migrate_command)


class BudgetedQueuePool(QueuePool):
    """A QueuePool whose wait for a free connection is part of the request's dependency budget.

    Asking for the wait's length starts the request's deadline (budget.py) when nothing else
    has, and cuts the wait to what is left of it: a request that found every connection busy
    still answers within its budget. Outside a request the configured timeout applies.
    QueuePool reads `_timeout` just before it waits, so a property serves.
    """

    @property
    def _timeout(self) -> float:
        end = budget.deadline()
        if end is None:
            return self._configured_timeout
        # Zero when spent: the pool then hands over only a connection that is free at once,
        # and the checkout listener refuses it for the spent budget.
        return max(0.0, min(self._configured_timeout, end - time.monotonic()))

    @_timeout.setter
    def _timeout(self, seconds: float) -> None:
        self._configured_timeout = seconds

    def recreate(self) -> BudgetedQueuePool:
        pool = super().recreate()  # passes on the wait cut to a request's budget, when in one
        pool._timeout = self._configured_timeout
        return pool


def _create_engine(url: URL, pool: PoolSettings, budget_seconds: float) -> Engine:
    return create_engine(
        url,
        poolclass=BudgetedQueuePool,
        # No pool_pre_ping: the checkout listener below pings instead, with the request's
        # deadline armed first (a pre-ping on a paused server would wait forever).
        pool_size=pool.size,
        max_overflow=pool.max_overflow,
        # All connections busy means overload: a third of the budget (at most what is left of
        # it), then the 503 page.
        pool_timeout=pool.timeout_seconds or budget_seconds / 3,
        pool_recycle=pool.recycle_seconds,
        # A failed statement's error (logged with its traceback) would otherwise repeat its
        # parameters: visitors' reviews and names.
        hide_parameters=True,
        connect_args={
            "connect_timeout": pool.connect_timeout_seconds,
            "application_name": "restaurant-reviews",
            # The server ends any statement that outlasts a whole request budget.
            "options": f"-c statement_timeout={round(budget_seconds * 1000)}",
            **KEEPALIVE_PARAMETERS,
        },
    )


class ConnectionWatchdog:
    """Cuts the socket of a connection still checked out when its request's deadline passes.

    A paused or frozen server leaves a query (or the checkout ping) waiting forever: its
    kernel still acknowledges every packet, so neither TCP keepalives nor statement_timeout
    end the wait. Shutting the socket down makes the blocked driver call fail at once with a
    connection error (so the 503 page), and the pool then discards the connection. It works
    for any driver whose connections have fileno(), as psycopg 2 and 3 both do.

    The watchdog holds a duplicate of the socket's descriptor while armed, so a connection
    closed meanwhile can never make it shut down an unrelated socket that reused the number.
    It holds the bare descriptor: a socket object is made only to cut, which is rare, while
    arming happens on every read and every other checkout.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._armed: dict[object, tuple[float, int]] = {}
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        # When the watching thread wakes up next (None: only when notified).
        self._wakes_at: float | None = None

    def arm(self, key: object, dbapi_connection, deadline: float) -> None:
        guard = os.dup(dbapi_connection.fileno())
        with self._changed:
            replaced = self._armed.pop(key, None)
            self._armed[key] = (deadline, guard)
            if self._thread is None:  # started lazily: gunicorn forks workers after import
                self._thread = threading.Thread(
                    target=self._watch, name="db-connection-watchdog", daemon=True)
                self._thread.start()
            # Every request arms a deadline later than those already armed: waking the thread
            # for each would cost a thread switch per query for nothing. It is woken only when
            # it would otherwise sleep past this deadline.
            if self._wakes_at is None or deadline < self._wakes_at:
                self._wakes_at = deadline
                self._changed.notify()
        if replaced is not None:
            os.close(replaced[1])

    def disarm(self, key: object) -> None:
        with self._changed:
            armed = self._armed.pop(key, None)
        if armed is not None:
            os.close(armed[1])

    def armed_count(self) -> int:
        with self._changed:
            return len(self._armed)

    def _watch(self) -> None:
        with self._changed:
            while True:
                now = self._clock()
                for key in [key for key, (end, _) in self._armed.items() if end <= now]:
                    _end, guard = self._armed.pop(key)
                    info = getattr(key, "info", None)  # a connection record: say it was us
                    if info is not None:
                        info[CUT_BY_WATCHDOG] = True
                    _cut(guard)
                earliest = min((end for end, _ in self._armed.values()), default=None)
                if earliest is not None or self._wakes_at is None or self._wakes_at <= now:
                    self._wakes_at = earliest
                # else nothing is armed, yet the thread sleeps until the deadline it was woken
                # for: the next read arms a later one, and waking for it would cost a thread
                # switch per read again.
                self._changed.wait(None if self._wakes_at is None else self._wakes_at - now)


def _cut(guard: int) -> None:
    # Neutral on purpose: the time may have gone to another dependency (Blob Storage) while
    # the connection was checked out; the request's 503 log names the one that failed.
    logger.warning("Database connection cut: the request's dependency budget ran out while "
                   "it was checked out")
    try:
        duplicate = socket.socket(fileno=guard)
    except OSError:  # never raised into the watching thread, which must outlive every cut
        os.close(guard)
        return
    # Closes the descriptor when done; a peer that closed first left nothing to interrupt.
    with duplicate, contextlib.suppress(OSError):
        duplicate.shutdown(socket.SHUT_RDWR)


def _bound_checkouts_by_the_request_budget(engine: Engine, watchdog: ConnectionWatchdog) -> None:
    """Ping every reused connection on checkout (but a read's), under the request's deadline.

    A dead connection (PostgreSQL restarted, network blip) invalidates the whole pool, like
    SQLAlchemy's pool_pre_ping, so the site heals at once without a restart even when the
    outage outlasted every pooled connection. read_rows finds a dead connection with its own
    statement instead, and invalidates the pool alike.
    """

    @event.listens_for(engine, "connect")
    def mark_fresh(dbapi_connection, connection_record):
        connection_record.info["fresh"] = True

    @event.listens_for(engine, "checkout")
    def ping_within_budget(dbapi_connection, connection_record, connection_proxy):
        connection_record.info.pop(CUT_BY_WATCHDOG, None)
        fresh = connection_record.info.pop("fresh", False)
        if _TAKING_A_READER.get():
            return
        # A spent budget raises here, and the pool takes the connection back.
        _arm_until_the_deadline(watchdog, connection_record, dbapi_connection)
        if fresh:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # Whatever the reason, a connection that cannot answer SELECT 1 is of no use.
            raise InvalidatePoolError(f"ping failed: {type(error).__name__}") from error

    @event.listens_for(engine, "handle_error")
    def keep_the_pool_when_the_watchdog_cut(context):
        # The watchdog's cut says nothing about the other pooled connections: discard only
        # this one, not the whole pool (the default for a disconnect).
        connection = context.connection
        if connection is None or connection.invalidated:
            return
        if _cut_by_watchdog(connection.connection):
            context.invalidate_pool_on_disconnect = False

    @event.listens_for(engine, "checkin")
    def release(dbapi_connection, connection_record):
        watchdog.disarm(connection_record)

    @event.listens_for(engine, "do_connect")
    def refuse_when_out_of_budget(dialect, connection_record, cargs, cparams):
        _refuse_unless_the_connect_timeout_fits(cparams)


def _refuse_unless_the_connect_timeout_fits(cparams: dict) -> None:
    """A new connection to an unresponsive server takes the whole connect timeout: start one
    only when the request can still afford that wait (DependencyTimeout otherwise)."""
    left = budget.remaining("PostgreSQL")
    if left is not None and left < cparams.get("connect_timeout", 0):
        raise budget.DependencyTimeout("PostgreSQL")


def _arm_until_the_deadline(watchdog: ConnectionWatchdog, key: object,
                            dbapi_connection) -> None:
    """Arm the watchdog for `dbapi_connection` until the request's deadline (nothing outside a
    request). A spent budget raises DependencyTimeout instead: a past deadline would have the
    watchdog cut a sound connection at once."""
    left = budget.remaining("PostgreSQL")
    if left is not None:
        watchdog.arm(key, dbapi_connection, time.monotonic() + left)


def _cut_by_watchdog(connection: PoolProxiedConnection) -> bool:
    """Whether this connection died of the watchdog's cut: then it alone is discarded, the
    other pooled connections are as healthy as before (a disconnect otherwise discards all)."""
    return bool(connection.info.get(CUT_BY_WATCHDOG))


class PreparedSelect(NamedTuple):
    """A SELECT that each pooled connection has PostgreSQL parse and plan once, then runs by
    name: a page's read then costs the server its execution alone (about 40 % less for the
    details statement). Only for statements whose plan does not depend on their parameters'
    values, since PostgreSQL may reuse one generic plan for every value."""

    name: str
    prepare: str  # PREPARE name AS the statement, its parameters numbered
    execute: str  # EXECUTE name (its parameters, as the driver fills them in)

    @classmethod
    def of(cls, sql: str) -> PreparedSelect:
        """From a statement compiled for the driver (named %(parameter)s placeholders)."""
        if "%%" in sql:
            raise ValueError("a prepared statement cannot hold an escaped %: its PREPARE is "
                             "sent as written")
        names = list(dict.fromkeys(_PYFORMAT_PARAMETER.findall(sql)))
        numbered = _PYFORMAT_PARAMETER.sub(lambda found: f"${names.index(found[1]) + 1}", sql)
        # Named after its text: a release with another statement prepares another name.
        name = "read_" + hashlib.sha256(sql.encode()).hexdigest()[:16]
        arguments = f" ({', '.join(f'%({parameter})s' for parameter in names)})" if names else ""
        return cls(name, f"PREPARE {name} AS {numbered}", f"EXECUTE {name}{arguments}")


def read_rows(engine: Engine, statement: str | PreparedSelect,
              parameters: dict) -> list[tuple]:
    """The rows (plain tuples) of a compiled SELECT, in one round trip and little Python.

    The request thread's reader (see ThreadReaders), in driver autocommit, runs the statement
    on a plain cursor: no BEGIN before it, no ROLLBACK after, no checkout ping and none of
    SQLAlchemy's Connection or Result work. A single statement sees one consistent snapshot by
    itself. The watchdog is armed with the request's deadline for the read alone.

    Without the ping, the read is what finds a dead connection (PostgreSQL restarted, the
    connection dropped): then the whole pool is invalidated as a failed ping does, and the read
    runs once more, on a new connection. Any other failure, or a second one, is raised as
    SQLAlchemy's error for it, as the engine's own execution would raise it.
    """
    try:
        return _read_once(engine, statement, parameters, may_retry=True)
    except _RetryOnNewConnection:
        return _read_once(engine, statement, parameters, may_retry=False)


class _RetryOnNewConnection(Exception):
    """A read found its pooled connection dead and invalidated the pool (never escapes
    read_rows)."""


def _read_once(engine: Engine, statement: str | PreparedSelect, parameters: dict,
               may_retry: bool) -> list[tuple]:
    readers = readers_of(engine)
    budget.remaining("PostgreSQL")  # a spent budget raises before any wait for the pool
    dbapi_error = engine.dialect.loaded_dbapi.Error
    try:
        connection, held = readers.take(engine)
    except dbapi_error as error:  # a new connection refused: the server is down
        disconnected = engine.dialect.is_disconnect(error, None, None)
        raise _sqlalchemy_error(engine, error, None, None, disconnected) from error
    driver = connection.driver_connection
    try:
        _arm_until_the_deadline(readers.watchdog, connection, driver)
    except budget.DependencyTimeout:  # the wait for the pool spent what was left
        readers.done(connection, held, keep=True)
        raise
    try:
        try:
            with driver.cursor() as cursor:
                if isinstance(statement, PreparedSelect):
                    _execute_prepared(cursor, connection.info, statement, parameters)
                else:
                    cursor.execute(statement, parameters)
                rows = cursor.fetchall()
        finally:
            readers.watchdog.disarm(connection)  # armed for the read alone, however it ended
    except dbapi_error as error:
        disconnected = engine.dialect.is_disconnect(error, driver, None)
        if disconnected:
            cut = _cut_by_watchdog(connection)
            if cut:
                connection.invalidate(error)
            else:
                # The same call SQLAlchemy makes for a disconnect or a failed pre-ping: every
                # connection opened before now is replaced at its next checkout.
                engine.pool._invalidate(connection, error)
            readers.done(connection, held, keep=False)
            if may_retry and not cut:
                logger.warning("Database connection found dead by a read (%s): pool "
                               "discarded, reading again", type(error).__name__)
                raise _RetryOnNewConnection from error
        else:
            readers.done(connection, held, keep=True)  # refused by PostgreSQL, still sound
        sql = statement.execute if isinstance(statement, PreparedSelect) else statement
        raise _sqlalchemy_error(engine, error, sql, parameters, disconnected) from error
    except BaseException:
        # Stopped halfway by anything else (an exit signal, a bug): what the connection still
        # holds is unknown, so it is not handed to the next read.
        connection.invalidate()
        readers.done(connection, held, keep=False)
        raise
    readers.done(connection, held, keep=True)
    return rows


class _HeldReader:
    """One thread's reader; handed back to its pool when dropped (a thread that ends drops
    its thread-local values)."""

    __slots__ = ("connection", "pool", "until", "generation", "__weakref__")

    def __init__(self, connection: PoolProxiedConnection, pool: Pool, until: float,
                 generation: int) -> None:
        self.connection: PoolProxiedConnection | None = connection
        self.pool = pool
        self.until = until
        self.generation = generation

    def hand_back(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            _hand_back(connection)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit the pool may be gone
            self.hand_back()


def _hand_back(connection: PoolProxiedConnection) -> None:
    """Return a reading connection to the pool as the ORM expects it, out of autocommit (an
    invalidated one is reopened there)."""
    driver = connection.driver_connection
    if driver is not None and not driver.closed:
        driver.autocommit = False
    connection.close()


class ThreadReaders:
    """Request threads' connections for read_rows: each thread takes one from the pool at its
    first read and keeps it checked out, in driver autocommit, for `hold_seconds`.

    A checkout and checkin per read (the pool's locks, the reset's rollback, switching
    autocommit on and off) each let another request thread run: under load that is a thread
    switch per step, and it cost the details page about a tenth of its throughput under
    `make bench`'s load. The connection still belongs to the pool: it counts towards the pool's
    size, a hold that ends hands it back to the pool's recycling, any connection invalidated
    (a dead one found, as after a restart) ends every thread's hold at its next read, so that
    the pool replaces what is stale before a read tries it, and `engine.dispose()` closes every
    held one.

    Held readers never take more than the pool's size less one (DB_POOL_SIZE - 1): the rest,
    and the overflow, stay for writes. A thread that finds them all held reads on a connection
    checked out for that read alone.
    """

    def __init__(self, watchdog: ConnectionWatchdog, hold_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.watchdog = watchdog
        self.hold_seconds = hold_seconds
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._held: weakref.WeakSet[_HeldReader] = weakref.WeakSet()  # every thread's
        self._generation = 0  # counts invalidations: a hold from before one has ended

    def take(self, engine: Engine) -> tuple[PoolProxiedConnection, bool]:
        """A connection in autocommit for this thread's read, and whether the thread holds it
        (else it is for this read alone)."""
        held: _HeldReader | None = getattr(self._local, "reader", None)
        if held is not None:
            if (held.pool is engine.pool and held.generation == self._generation
                    and self._clock() < held.until):
                return held.connection, True
            self.release()
        taking = _TAKING_A_READER.set(True)
        try:
            connection = engine.raw_connection()
        finally:
            _TAKING_A_READER.reset(taking)
        try:
            connection.driver_connection.autocommit = True
        except BaseException:
            connection.invalidate()  # a connection that cannot take autocommit is of no use
            connection.close()
            raise
        with self._lock:
            if len(self._held) >= engine.pool.size() - 1:
                return connection, False
            held = _HeldReader(connection, engine.pool, self._clock() + self.hold_seconds,
                               self._generation)
            self._held.add(held)
        self._local.reader = held
        return connection, True

    def done(self, connection: PoolProxiedConnection, held: bool, keep: bool) -> None:
        """After a read: a held connection is kept unless ``keep`` is false (it was
        invalidated); one for this read alone goes back to the pool."""
        if not held:
            _hand_back(connection)
        elif not keep:
            self.release()

    def release(self) -> None:
        """Hand this thread's reader back to its pool."""
        held: _HeldReader | None = getattr(self._local, "reader", None)
        if held is not None:
            self._local.reader = None
            with self._lock:
                self._held.discard(held)
            held.hand_back()

    def invalidated(self) -> None:
        """A pooled connection was invalidated: every hold ends at its thread's next read."""
        with self._lock:
            self._generation += 1

    def held_count(self) -> int:
        with self._lock:
            return len(self._held)

    def close_all(self) -> None:
        """Close every thread's reader (`engine.dispose()`: every connection is replaced).
        A thread reading on one meanwhile finds it closed, and reads again on a new one."""
        with self._lock:
            held = list(self._held)
            self._held.clear()
        for reader in held:
            connection = reader.connection
            if connection is not None:
                connection.invalidate()


# Each engine's readers (init_app), dropped with the engine.
_READERS: weakref.WeakKeyDictionary[Engine, ThreadReaders] = weakref.WeakKeyDictionary()


def readers_of(engine: Engine) -> ThreadReaders:
    return _READERS[engine]


def _execute_prepared(cursor, connection_info: dict, statement: PreparedSelect,
                      parameters: dict) -> None:
    """Prepare the statement on this connection the first time, then execute it by name.

    A schema change that alters what it returns makes PostgreSQL refuse the old plan ("cached
    plan must not change result type"): it is then prepared afresh, once.
    """
    prepared = connection_info.setdefault(_PREPARED, set())
    for last_attempt in (False, True):
        if statement.name not in prepared:
            cursor.execute(statement.prepare)
            prepared.add(statement.name)
        try:
            cursor.execute(statement.execute, parameters)
            return
        except psycopg2.errors.FeatureNotSupported:
            if last_attempt:
                raise
            cursor.execute(f"DEALLOCATE {statement.name}")
            prepared.discard(statement.name)


def _sqlalchemy_error(engine: Engine, error: Exception, sql: str | None,
                      parameters: dict | None, disconnected: bool) -> DBAPIError:
    """The driver's error as SQLAlchemy's class for it (OperationalError, DataError...), which
    errors.py turns into the 503, 400 or 500 page."""
    return DBAPIError.instance(
        sql, parameters, error, engine.dialect.loaded_dbapi.Error,
        hide_parameters=engine.hide_parameters, connection_invalidated=disconnected,
        dialect=engine.dialect)


def _use_token_as_password(engine: Engine, tokens: EntraTokenCache) -> None:
    @event.listens_for(engine, "do_connect")
    def provide_token(dialect, connection_record, cargs, cparams):
        # Runs only when the pool opens a NEW connection; reused connections need no token.
        cparams["password"] = tokens.token(timeout=budget.remaining("PostgreSQL"))
        # The token may have taken most of the budget (a slow identity endpoint).
        _refuse_unless_the_connect_timeout_fits(cparams)


def _stamp_commit_deadline(session: Session) -> None:
    """Tell PostgreSQL when this request stops waiting: a COMMIT arriving later is refused.

    Without it, a COMMIT sent just before the server froze would run when it resumed, after
    the visitor was told nothing was saved.
    """
    if not _has_changes(session):
        return  # nothing to write: an empty COMMIT needs no deadline (and no round trip)
    left = budget.remaining("PostgreSQL")
    if left is None:
        return
    if left <= COMMIT_RESERVE_SECONDS:
        raise budget.DependencyTimeout("PostgreSQL")
    session.execute(STAMP_COMMIT_DEADLINE, {"seconds": left - COMMIT_RESERVE_SECONDS})


def on_flush(app: Flask, observer: Callable[[Session], None]) -> None:
    """Call ``observer(session)`` after each flush of the app's sessions: the signal that the
    transaction wrote, given while ``session.new`` still lists the objects the flush inserted."""
    app.extensions["db_flush_observers"].append(observer)


def _remember_writes(sessions: sessionmaker, observers: list[Callable[[Session], None]]) -> None:
    """Mark a session whose transaction flushed or ran a statement that may write (text()
    statements count: they may be anything), so its commit is stamped; tell the observers
    (on_flush) of every flush."""

    @event.listens_for(sessions, "after_flush")
    def flushed(session, _context) -> None:
        session.info[_WROTE] = True
        for observer in observers:
            observer(session)

    @event.listens_for(sessions, "do_orm_execute")
    def executed(state) -> None:
        if not state.is_select:
            state.session.info[_WROTE] = True

    @event.listens_for(sessions, "after_commit")
    @event.listens_for(sessions, "after_rollback")
    def ended(session) -> None:
        session.info.pop(_WROTE, None)


def _has_changes(session: Session) -> bool:
    """Whether this commit may write: objects still to flush, or writes already sent."""
    return bool(session.new or session.dirty or session.deleted or session.info.get(_WROTE))


def get_engine(app: Flask | None = None) -> Engine:
    return (app or current_app).extensions["db_engine"]


def get_session() -> Session:
    """The session of the current request (or app context), created on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["db_sessionmaker"]()
    return g.db_session


def _close_session(_exception: BaseException | None) -> None:
    """Close the request's session; a dead connection must not turn the answer into a 500.

    Closing rolls back, which fails on a connection the server already dropped. Teardown runs
    past the error handlers, so the error is logged here and the connection discarded.
    """
    session = g.pop("db_session", None)
    if session is None:
        return
    try:
        session.close()
    except (DBAPIError, budget.DependencyTimeout) as error:
        logger.warning("Database connection lost while ending the request: %s",
                       error_kind(error))
        try:
            session.invalidate()
        except Exception:  # the connection is unusable either way; the pool replaces it
            logger.debug("Discarding the dead connection failed too", exc_info=True)


def error_kind(error: BaseException) -> str:
    """The class of a database error and of the driver's error beneath it, never the message."""
    original = getattr(error, "orig", None)
    if original is None:
        return type(error).__name__
    return f"{type(error).__name__} ({type(original).__module__}.{type(original).__name__})"


def check_database(app: Flask | None = None) -> None:
    """Raise unless PostgreSQL answers a trivial query (used by the readiness view): one round
    trip, as a page's read (no checkout ping before it)."""
    read_rows(get_engine(app), "SELECT 1", {})


def upgrade_database(app: Flask, revision: str = "head") -> None:
    """Apply Alembic migrations up to ``revision``; safe when several instances start at once.

    All of it runs in one transaction holding a transaction-scoped advisory lock: the other
    instances wait, then find the schema current and do nothing. PostgreSQL's DDL is
    transactional, so a failed migration leaves the schema as it was, and the lock is released
    by commit, rollback or a dropped connection, never left behind by a crashed instance.
    """
    config = _alembic_config()
    with get_engine(app).begin() as connection:
        connection.execute(text(NO_STATEMENT_TIMEOUT))
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


@click.command("migrate")
@with_appcontext
def migrate_command() -> None:
    """Apply database migrations (run once per deployment, before serving)."""
    upgrade_database(current_app)
    click.echo("Database schema is up to date.")
