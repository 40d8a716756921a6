"""Outages: PostgreSQL or storage down or unresponsive gives a clear 503 within the request
budget, nothing is half-saved, and the site recovers by itself.

The whole site under load through every fault is tests/webapp/test_faults.py (devtools.chaos).
"""

from __future__ import annotations

import io
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from flask import g
from sqlalchemy import event, literal, select, text
from sqlalchemy.exc import DataError, OperationalError

from devtools.chaos import postgres_pids
from devtools.services import AzuriteServer, PostgresCluster, free_port
from tests.webapp.conftest import pool_events
from webapp import create_app
from webapp.budget import ANSWER_RESERVE_SECONDS, DependencyTimeout
from webapp.config import ConfigError, Settings
from webapp.db import (
    ConnectionWatchdog,
    DatabaseTokenError,
    EntraTokenCache,
    PreparedSelect,
    get_engine,
    get_session,
    read_rows,
    readers_of,
    upgrade_database,
)

# Tests use the default budget (webapp/config.py): every answer below must come within it.
BUDGET_SECONDS = 3.0
HEAL_SECONDS = 2.0

OUTAGE_ROLE = "outage_app"
OUTAGE_PASSWORD = "outage-app-password"  # noqa: S105 - throwaway local cluster


@pytest.fixture
def own_postgres(services_dir) -> Iterator[PostgresCluster]:
    """A cluster this test may stop and start without disturbing the shared one."""
    data_dir = services_dir / f"outage-{uuid.uuid4().hex[:8]}"
    cluster = PostgresCluster(data_dir, durable=False).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def outage_app(own_postgres, azurite, container_name, build_config):
    own_postgres.create_role(OUTAGE_ROLE, password=OUTAGE_PASSWORD)
    own_postgres.create_database("reviews", owner=OUTAGE_ROLE)
    url = own_postgres.url("reviews", user=OUTAGE_ROLE, password=OUTAGE_PASSWORD)
    app = create_app(build_config(url, azurite.connection_string, container_name))
    upgrade_database(app)
    yield app
    get_engine(app).dispose()
    app.extensions["photo_store"].close()


def test_database_outage_is_a_503_and_the_site_recovers_without_restart(
    outage_app, own_postgres, make_image
):
    client = outage_app.test_client()
    created = client.post("/restaurants/new", data={"name": "Survivor", "street_address": "1 A"})
    assert created.status_code == 303
    assert get_engine(outage_app).pool.checkedin() >= 1  # a pooled connection to go stale

    own_postgres.stop()

    down = client.get("/")
    assert down.status_code == 503
    assert "The restaurant database is unavailable right now" in down.text
    assert down.headers["Retry-After"] == "30"
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["failed"] == ["database"]
    assert ready.json["checks"]["storage"] == "ok"
    assert client.get("/healthz").status_code == 200  # the process itself is fine

    own_postgres.start()

    # Same app object, same pool: pre-ping throws away the dead connections.
    assert "Survivor" in client.get("/").text
    assert client.get("/readyz").json == {
        "status": "ready",
        "checks": {"database": "ok", "storage": "ok"},
        "failed": [],
    }


@pytest.fixture
def storage_down(config) -> None:
    """Point the app's storage at a port where nothing listens (request before `client`)."""
    nowhere = AzuriteServer(None, port=free_port())  # never started
    config["AZURE_STORAGE_CONNECTION_STRING"] = nowhere.connection_string


def test_storage_outage_is_a_503_and_saves_no_review(
    storage_down, client, add_restaurant, add_review, make_image, run_sql
):
    restaurant_id = add_restaurant("Pix")

    response = add_review(restaurant_id, photo=(make_image("PNG"), "a.png"))

    assert response.status_code == 503
    assert "Photo storage is unavailable right now. What you submitted was not" in response.text
    assert run_sql("SELECT count(*) FROM reviews") == [(0,)]
    assert client.get("/photos/" + "b" * 64 + ".png").status_code == 503
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["failed"] == ["storage"]
    assert ready.json["checks"] == {
        "database": "ok",
        "storage": "unavailable: ServiceRequestError",
    }
    # Pages that need no photo keep working.
    assert "Pix" in client.get("/").text


# -- an unresponsive dependency ----------------------------------------------------------------


@contextmanager
def paused(pids: list[int]) -> Iterator[None]:
    """SIGSTOP the processes (sockets stay open, nothing answers); SIGCONT them on the way out."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def first_success_after(call, limit: float) -> float:
    """Seconds until `call()` answers 200 (retrying); fails the test past `limit`."""
    started = time.monotonic()
    while True:
        response = call()
        elapsed = time.monotonic() - started
        if response.status_code == 200:
            return elapsed
        assert elapsed <= limit, f"still {response.status_code} after {elapsed:.2f} s"
        time.sleep(0.05)


def test_paused_database_is_a_503_within_the_budget_then_heals(outage_app, own_postgres):
    client = outage_app.test_client()
    created = client.post("/restaurants/new", data={"name": "Frozen", "street_address": "1 A"})
    details = created.headers["Location"]
    assert client.get(details).status_code == 200  # pooled connections to be left hanging

    with paused(postgres_pids(own_postgres)):
        response, seconds = timed(lambda: client.get(details))
        assert response.status_code == 503
        assert seconds <= BUDGET_SECONDS
        assert "The restaurant database is unavailable right now" in response.text
        # A write is refused in time too, and never runs when the server resumes.
        refused, seconds = timed(lambda: client.post(
            "/restaurants/new", data={"name": "Never saved", "street_address": "2 B"}))
        assert refused.status_code == 503
        assert seconds <= BUDGET_SECONDS

    assert first_success_after(lambda: client.get(details), HEAL_SECONDS) <= HEAL_SECONDS
    names = own_postgres.execute("SELECT name FROM restaurants", database="reviews")
    assert names == [("Frozen",)]


def test_a_commit_reaching_postgresql_after_its_deadline_is_refused(outage_app):
    engine = get_engine(outage_app)
    insert = text("INSERT INTO restaurants (name, street_address) VALUES (:name, '1 A')")
    stamp = text("SELECT set_config('webapp.commit_deadline', "
                 "(clock_timestamp() + make_interval(secs => :seconds))::text, true)")

    with pytest.raises(OperationalError, match="commit refused"), engine.begin() as connection:
        connection.execute(stamp, {"seconds": -0.001})
        connection.execute(insert, {"name": "Too late"})
    with engine.begin() as connection:
        connection.execute(stamp, {"seconds": 5})
        connection.execute(insert, {"name": "In time"})
    with engine.begin() as connection:  # outside a request: no deadline, nothing checked
        connection.execute(insert, {"name": "Background"})

    with engine.connect() as connection:
        names = connection.scalars(text("SELECT name FROM restaurants ORDER BY name")).all()
    assert names == ["Background", "In time"]


def test_a_request_out_of_budget_before_its_commit_saves_nothing(outage_app, own_postgres):
    with outage_app.test_request_context("/restaurants/new", method="POST"):
        outage_app.preprocess_request()
        session = get_session()
        session.execute(text("INSERT INTO restaurants (name, street_address) VALUES ('X', 'Y')"))
        g.dependency_deadline = time.monotonic()  # the budget is spent
        with pytest.raises(DependencyTimeout, match="PostgreSQL"):
            session.commit()
        session.rollback()
    assert own_postgres.execute("SELECT count(*) FROM restaurants", database="reviews") == [(0,)]


def test_closing_a_session_on_a_dropped_connection_is_logged_not_raised(
    outage_app, own_postgres, caplog
):
    context = outage_app.test_request_context("/")
    context.push()
    get_session().execute(text("SELECT 1"))  # a transaction on a pooled connection
    own_postgres.stop()  # the server closes it under the open session
    try:
        with caplog.at_level(logging.WARNING, logger="webapp.db"):
            context.pop()  # teardown rolls back on the dead connection: must not raise
    finally:
        own_postgres.start()
    assert "Database connection lost while ending the request: OperationalError" in caplog.text


@pytest.fixture
def silent_storage(config) -> Iterator[None]:
    """Storage that accepts connections and never answers, like a paused Azurite."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    config["AZURE_STORAGE_CONNECTION_STRING"] = AzuriteServer(
        None, port=server.getsockname()[1]).connection_string
    config["STORAGE_RETRY_TOTAL"] = 1  # the production default: the retry must fit too
    yield
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_unresponsive_storage_is_a_503_within_the_budget_and_other_pages_work(
    silent_storage, client, add_restaurant, add_review, make_image, run_sql
):
    restaurant_id = add_restaurant("Quiet")
    photo = "c" * 64 + ".png"

    response, seconds = timed(lambda: client.get(f"/photos/{photo}"))
    assert (response.status_code, seconds <= BUDGET_SECONDS) == (503, True)
    response, seconds = timed(lambda: add_review(restaurant_id, photo=(make_image("PNG"), "a.png")))
    assert (response.status_code, seconds <= BUDGET_SECONDS) == (503, True)
    assert "Photo storage is unavailable right now. What you submitted was not" in response.text
    assert run_sql("SELECT count(*) FROM reviews") == [(0,)]

    # Degraded, not down: pages that need no photo bytes, and cached photos, still work.
    assert client.get("/").status_code == 200
    assert client.get(f"/restaurants/{restaurant_id}").status_code == 200
    assert add_review(restaurant_id).status_code == 303  # a review without a photo
    revalidation = client.get(f"/photos/{photo}", headers={"If-None-Match": f'"{"c" * 64}"'})
    assert revalidation.status_code == 304


def test_a_storage_outage_is_logged_with_the_dependency_and_the_error_kind(
    storage_down, client, caplog
):
    with caplog.at_level(logging.ERROR, logger="webapp.errors"):
        assert client.get("/photos/" + "d" * 64 + ".jpg").status_code == 503
    assert ("Dependency failed: dependency=Blob Storage kind=ServiceRequestError "
            "(urllib3.exceptions.NewConnectionError)") in caplog.text


# -- the pieces on their own --------------------------------------------------------------------


class FakeConnection:
    def __init__(self, sock: socket.socket | io.FileIO) -> None:
        self._sock = sock

    def fileno(self) -> int:
        return self._sock.fileno()


def test_the_watchdog_cuts_a_connection_still_waiting_at_its_deadline():
    ours, server = socket.socketpair()
    watchdog = ConnectionWatchdog()
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(ours.recv(1)))
    reader.start()

    watchdog.arm("conn", FakeConnection(ours), time.monotonic() + 0.2)
    reader.join(timeout=5)

    assert not reader.is_alive()
    assert received == [b""]  # the blocked read ended: the socket was shut down
    assert watchdog.armed_count() == 0
    ours.close()
    server.close()


def test_the_watchdog_outlives_a_descriptor_that_is_no_socket():
    pipe_read, pipe_write = os.pipe()
    ours, server = socket.socketpair()
    ours.settimeout(5)
    watchdog = ConnectionWatchdog()

    with io.FileIO(pipe_read, closefd=False) as not_a_socket:
        watchdog.arm("pipe", FakeConnection(not_a_socket), time.monotonic())  # due at once
    watchdog.arm("conn", FakeConnection(ours), time.monotonic() + 0.2)

    assert ours.recv(1) == b""  # the watching thread lived on to cut the next one
    assert watchdog.armed_count() == 0
    for descriptor in (pipe_read, pipe_write):
        os.close(descriptor)
    ours.close()
    server.close()


@pytest.mark.parametrize("armed_first", ["early", "late"])
def test_the_earliest_deadline_is_cut_on_time_whatever_was_armed_before(armed_first):
    # Armed second, the early deadline must wake the thread sleeping until the late one.
    pairs = {name: socket.socketpair() for name in ("early", "late")}
    deadlines = {"early": 0.2, "late": 60}
    watchdog = ConnectionWatchdog()
    for name in sorted(pairs, key=lambda name: name != armed_first):
        watchdog.arm(name, FakeConnection(pairs[name][0]), time.monotonic() + deadlines[name])

    early = pairs["early"][0]
    early.settimeout(5)
    assert early.recv(1) == b""  # shut down at its own deadline, not the later one's
    assert watchdog.armed_count() == 1
    watchdog.disarm("late")
    for pair in pairs.values():
        for sock in pair:
            sock.close()


class CountingCondition(threading.Condition):
    def __init__(self) -> None:
        super().__init__()
        self.notified = 0

    def notify(self, n: int = 1) -> None:
        self.notified += 1
        super().notify(n)


def test_arming_a_later_deadline_does_not_wake_the_watchdog():
    ours, server = socket.socketpair()
    watchdog = ConnectionWatchdog()
    watchdog._changed = CountingCondition()
    start = time.monotonic()
    for second in range(60, 70):  # each request's deadline falls after those already armed
        watchdog.arm(f"conn{second}", FakeConnection(ours), start + second)

    assert watchdog._changed.notified == 1  # the first, which the thread waits for
    for second in range(60, 70):
        watchdog.disarm(f"conn{second}")
    ours.close()
    server.close()


def test_reads_one_after_another_wake_the_watchdog_once():
    ours, server = socket.socketpair()
    watchdog = ConnectionWatchdog()
    watchdog._changed = CountingCondition()
    start = time.monotonic()
    for second in range(60, 70):  # one read at a time: nothing else armed when each arms
        watchdog.arm("conn", FakeConnection(ours), start + second)
        watchdog.disarm("conn")
        time.sleep(0.02)  # the watching thread has looked at the (empty) set meanwhile

    assert watchdog._changed.notified == 1
    ours.close()
    server.close()


def test_a_connection_returned_in_time_is_left_alone():
    ours, server = socket.socketpair()
    watchdog = ConnectionWatchdog()
    watchdog.arm("conn", FakeConnection(ours), time.monotonic() + 0.2)
    watchdog.disarm("conn")
    time.sleep(0.4)

    server.sendall(b"x")
    assert ours.recv(1) == b"x"
    assert watchdog.armed_count() == 0
    ours.close()
    server.close()


class FlakyCredential:
    """Fails while `down` is set; otherwise a token valid for `lifetime` seconds."""

    def __init__(self, clock, lifetime: float) -> None:
        self.clock, self.lifetime, self.down, self.calls = clock, lifetime, False, 0

    def get_token(self, *_scopes, **_kwargs) -> AccessToken:
        self.calls += 1
        if self.down:
            raise ClientAuthenticationError("identity endpoint unreachable")
        return AccessToken(f"token-{self.calls}", int(self.clock.now + self.lifetime))


class ManualClock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_failed_token_refresh_keeps_the_valid_token_and_heals_when_the_endpoint_returns():
    clock = ManualClock()
    credential = FlakyCredential(clock, lifetime=3600)
    cache = EntraTokenCache(credential, refresh_margin_seconds=300, clock=clock)
    assert cache.token() == "token-1"

    credential.down = True
    clock.now += 3600 - 100  # inside the refresh margin, still valid
    assert cache.token() == "token-1"
    clock.now += 200  # expired, and no new one
    with pytest.raises(DatabaseTokenError):
        cache.token()

    credential.down = False  # the next new connection asks again
    assert cache.token() == "token-4"


@pytest.mark.parametrize("value", ["0.5", "120", "soon", "nan"])
def test_the_request_budget_must_be_a_sensible_number_of_seconds(value, config):
    with pytest.raises(ConfigError, match="REQUEST_BUDGET_SECONDS must be"):
        Settings.from_mapping({**config, "REQUEST_BUDGET_SECONDS": value})


def test_the_request_budget_defaults_to_a_few_seconds(config):
    assert Settings.from_mapping(config).request_budget_seconds == BUDGET_SECONDS
    assert Settings.from_mapping({**config, "REQUEST_BUDGET_SECONDS": "5"}
                                 ).request_budget_seconds == 5.0


def test_the_budget_starts_at_the_first_dependency_call_not_with_the_upload(outage_app):
    """Reading a large upload from a slow phone and decoding it is not dependency time."""
    with outage_app.test_request_context("/"):
        outage_app.preprocess_request()  # the site's before-request hooks have run
        assert "dependency_deadline" not in g
        time.sleep(0.2)
        first_call = time.monotonic()
        get_session().execute(text("SELECT 1"))
        assert g.dependency_deadline >= first_call + BUDGET_SECONDS - ANSWER_RESERVE_SECONDS


def test_paused_storage_during_a_photo_review_leaves_the_database_pool_alone(
    silent_storage, app, client, add_restaurant, add_review, make_image, caplog, monkeypatch
):
    restaurant_id = add_restaurant("Pool")
    engine = get_engine(app)
    opened: list[int] = []
    event.listen(engine, "connect", lambda *_args: opened.append(1))
    store = app.extensions["photo_store"]
    checked_out_during_upload: list[int] = []
    upload = store.upload

    def watched_upload(*args):
        checked_out_during_upload.append(engine.pool.checkedout())
        return upload(*args)

    monkeypatch.setattr(store, "upload", watched_upload)

    with caplog.at_level(logging.WARNING):
        response = add_review(restaurant_id, photo=(make_image("PNG"), "a.png"))
        assert response.status_code == 503
        # The read transaction ended before the upload: no connection was checked out when
        # the budget ran out, so none was cut and the pool still holds a healthy one.
        assert client.get("/").status_code == 200

    assert checked_out_during_upload == [0]
    assert opened == []
    assert "Database connection" not in caplog.text
    assert "dependency=PostgreSQL" not in caplog.text


def use_two_pooled_connections(engine) -> None:
    """Two connections open at once, each used, then back in the pool."""
    use_pooled_connections(engine, 2)


def use_pooled_connections(engine, count: int) -> None:
    """`count` connections open at once, each used, then back in the pool."""
    with ExitStack() as stack:
        for connection in [stack.enter_context(engine.connect()) for _ in range(count)]:
            connection.execute(text("SELECT 1"))


def connections_opened(engine) -> list[int]:
    """One item per new connection the engine opens from now on."""
    return pool_events(engine, "connect")


def test_a_checkout_after_the_deadline_raises_without_cutting_the_pool(app):
    engine = get_engine(app)
    use_two_pooled_connections(engine)
    opened: list[int] = []
    event.listen(engine, "connect", lambda *_args: opened.append(1))

    with app.test_request_context("/"):
        g.dependency_deadline = time.monotonic()  # the budget is spent
        with pytest.raises(DependencyTimeout, match="PostgreSQL"), engine.connect():
            pass
    use_two_pooled_connections(engine)

    # Never armed with a past deadline: nothing cut, the pool not invalidated; only the
    # connection whose checkout failed was replaced.
    assert opened == [1]
    assert engine.pool.checkedout() == 0


def test_a_connection_the_watchdog_cut_does_not_invalidate_the_pool(app):
    engine = get_engine(app)
    use_two_pooled_connections(engine)
    invalidations: list[bool] = []
    event.listen(engine, "handle_error",
                 lambda context: invalidations.append(context.invalidate_pool_on_disconnect))

    with app.test_request_context("/"):
        g.dependency_deadline = time.monotonic() + 0.3
        with pytest.raises(OperationalError), engine.connect() as connection:
            connection.execute(text("SELECT pg_sleep(2)"))  # cut by the watchdog at 0.3 s
    opened: list[int] = []
    event.listen(engine, "connect", lambda *_args: opened.append(1))
    with engine.connect() as connection:  # the other pooled connection is still used
        connection.execute(text("SELECT 1"))

    assert invalidations == [False]
    assert opened == []


def test_only_a_commit_that_writes_is_stamped_with_the_deadline(app, statements):
    with app.test_request_context("/"):
        session = get_session()
        session.commit()  # nothing at all
        session.execute(select(literal(1)))
        session.commit()  # a read-only transaction
        assert not [s for s in statements if "commit_deadline" in s]

        session.execute(text("INSERT INTO restaurants (name, street_address) VALUES ('X', 'Y')"))
        session.commit()
    assert len([s for s in statements if "commit_deadline" in s]) == 1


# -- reads: one round trip, and a retry when the pooled connection was dead ----------------------

DETAILS_READ = "FROM restaurants LEFT OUTER JOIN reviews"
PING = "SELECT 1"


def test_a_read_on_a_reused_connection_sends_its_statement_alone(
    app, client, add_restaurant, statements
):
    restaurant_id = add_restaurant("Once")  # leaves the connection the read reuses in the pool
    opened = connections_opened(get_engine(app))
    statements.clear()

    for _ in range(2):
        assert client.get(f"/restaurants/{restaurant_id}").status_code == 200

    assert opened == []
    # No ping, no BEGIN or ROLLBACK: the read alone, each time; prepared once, by the first.
    assert len(statements) == 2, statements
    assert all(DETAILS_READ in statement for statement in statements)
    assert len(statements.prepared) == 1


def test_the_readiness_check_is_one_round_trip(app, client, add_restaurant, statements):
    add_restaurant("Ready")  # leaves a connection in the pool
    statements.clear()

    assert client.get("/readyz").status_code == 200

    assert statements == [PING]  # the check's own SELECT 1: no checkout ping before it


def test_a_prepared_select_numbers_its_parameters_and_refuses_escaped_percents():
    statement = PreparedSelect.of(
        "SELECT a FROM t WHERE b = %(b)s AND c > %(c)s OR d = %(b)s LIMIT %(limit)s")
    assert statement.prepare == (f"PREPARE {statement.name} AS SELECT a FROM t "
                                 "WHERE b = $1 AND c > $2 OR d = $1 LIMIT $3")
    assert statement.execute == f"EXECUTE {statement.name} (%(b)s, %(c)s, %(limit)s)"
    assert PreparedSelect.of("SELECT 1").execute == f"EXECUTE {PreparedSelect.of('SELECT 1').name}"
    assert PreparedSelect.of("SELECT 2").name != PreparedSelect.of("SELECT 1").name
    with pytest.raises(ValueError, match="escaped %"):
        PreparedSelect.of("SELECT a FROM t WHERE b LIKE 'x%%'")


def test_a_prepared_read_is_prepared_again_after_a_schema_change_alters_its_result(
    app, client, add_restaurant, run_sql, statements
):
    details = f"/restaurants/{add_restaurant('Altered')}"
    assert client.get(details).status_code == 200  # prepared on the pooled connection
    # PostgreSQL now refuses the connection's plan: "cached plan must not change result type".
    run_sql("ALTER TABLE restaurants ALTER COLUMN street_address TYPE text")

    page = client.get(details)

    assert page.status_code == 200
    assert "Altered" in page.text
    assert any(statement.startswith("DEALLOCATE") for statement in statements)


def test_a_write_on_a_reused_connection_is_pinged_first(app, add_restaurant, statements):
    add_restaurant("First")
    opened = connections_opened(get_engine(app))
    statements.clear()

    add_restaurant("Second")

    assert opened == []
    assert statements[0] == PING, statements
    assert statements[1].startswith("INSERT INTO restaurants"), statements


def test_after_a_restart_the_first_read_succeeds_and_the_whole_pool_is_replaced(
    outage_app, own_postgres, statements_of, caplog
):
    client = outage_app.test_client()
    details = client.post("/restaurants/new",
                          data={"name": "Phoenix", "street_address": "1 A"}).headers["Location"]
    statements = statements_of(outage_app)
    use_pooled_connections(get_engine(outage_app), 3)

    own_postgres.stop()  # every pooled connection is dead from here on
    own_postgres.start()
    statements.clear()
    with caplog.at_level(logging.WARNING, logger="webapp.db"):
        first = client.get(details)
        later = [client.get(details).status_code for _ in range(2)]

    assert first.status_code == 200
    assert "Phoenix" in first.text
    assert later == [200, 200]
    assert PING not in statements
    # The first read failed on its dead connection (preparing its statement there) and ran
    # again on a new one: the pool was invalidated, so the next checkout opened a connection
    # rather than try a dead one. The thread kept that reader, which had the statement
    # prepared for the later reads.
    assert caplog.text.count("Database connection found dead by a read") == 1
    assert len([s for s in statements if DETAILS_READ in s]) == 3, statements
    assert len(statements.prepared) == 2, statements.prepared


def test_a_read_whose_retry_fails_too_is_a_503_in_time(outage_app, own_postgres, caplog):
    client = outage_app.test_client()
    details = client.post("/restaurants/new",
                          data={"name": "Gone", "street_address": "1 A"}).headers["Location"]
    use_two_pooled_connections(get_engine(outage_app))

    own_postgres.stop()  # the pooled connections are dead and no new one can be opened
    with caplog.at_level(logging.WARNING):
        response, seconds = timed(lambda: client.get(details))

    assert response.status_code == 503
    assert "The restaurant database is unavailable right now" in response.text
    assert seconds <= BUDGET_SECONDS
    assert "Database connection found dead by a read" in caplog.text  # so it did retry
    assert "Dependency failed: dependency=PostgreSQL kind=OperationalError" in caplog.text


def test_a_read_the_watchdog_cut_is_not_retried_and_leaves_the_pool_alone(app, statements):
    engine = get_engine(app)
    use_two_pooled_connections(engine)
    opened = connections_opened(engine)

    with app.test_request_context("/"):
        g.dependency_deadline = time.monotonic() + 0.3
        # An OperationalError, not the DependencyTimeout a retry's checkout would raise.
        with pytest.raises(OperationalError) as cut:
            read_rows(engine, "SELECT pg_sleep(2)", {})  # cut by the watchdog at 0.3 s
    assert read_rows(engine, "SELECT 2", {}) == [(2,)]  # on the other pooled connection

    assert cut.value.connection_invalidated
    assert opened == []
    assert len([s for s in statements if "pg_sleep" in s]) == 1  # not run again


def test_a_read_refused_by_postgresql_raises_sqlalchemys_error_and_keeps_its_connection(app):
    engine = get_engine(app)
    use_pooled_connections(engine, 1)
    opened = connections_opened(engine)

    with pytest.raises(DataError) as refused:
        read_rows(engine, "SELECT 1 / %(zero)s", {"zero": 0})

    assert not refused.value.connection_invalidated
    assert read_rows(engine, "SELECT 3", {}) == [(3,)]
    assert opened == []  # the same connection served the next read
    readers_of(engine).release()
    connection = engine.raw_connection()  # the pool's one connection, the reader's
    try:
        assert connection.driver_connection.autocommit is False  # as transactions expect it
    finally:
        connection.close()
