"""webapp/db.py's readers: one held pooled connection per request thread for read_rows."""

from __future__ import annotations

import threading
import time

import pytest
from flask import g
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from tests.webapp.conftest import pool_events
from webapp import create_app
from webapp.budget import ANSWER_RESERVE_SECONDS, DependencyTimeout
from webapp.config import current_settings
from webapp.db import get_engine, read_rows, readers_of

BACKEND_PID = "SELECT pg_backend_pid()"


def backend_ends(engine, pid: int, seconds: float = 5.0) -> bool:
    """Whether PostgreSQL's backend `pid` exits within `seconds` (it exits soon after its
    client closes the connection, not at once)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if read_rows(engine, "SELECT count(*) FROM pg_stat_activity WHERE pid = %(pid)s",
                     {"pid": pid}) == [(0,)]:
            return True
        time.sleep(0.05)
    return False


def test_a_thread_reads_on_one_held_connection_checked_out_once(app):
    engine = get_engine(app)
    checkouts = pool_events(engine, "checkout")

    pids = {read_rows(engine, BACKEND_PID, {})[0][0] for _ in range(5)}

    assert len(pids) == 1
    assert checkouts == [1]
    assert readers_of(engine).held_count() == 1


def test_a_held_reader_is_armed_only_while_it_reads(app, monkeypatch):
    engine = get_engine(app)
    watchdog = readers_of(engine).watchdog
    armed_when_disarming: list[int] = []
    disarm = watchdog.disarm

    def disarm_noting(key) -> None:
        armed_when_disarming.append(watchdog.armed_count())
        disarm(key)

    monkeypatch.setattr(watchdog, "disarm", disarm_noting)
    with app.test_request_context("/"):
        read_rows(engine, "SELECT 1", {})
        assert watchdog.armed_count() == 0

    assert armed_when_disarming == [1]  # armed for the read, then disarmed once


def test_a_reader_goes_back_to_the_pool_out_of_autocommit(app):
    engine = get_engine(app)
    [[reader_pid]] = read_rows(engine, BACKEND_PID, {})

    readers_of(engine).release()
    with engine.connect() as connection:  # the pool's only connection: the reader's
        assert connection.execute(text(BACKEND_PID)).scalar() == reader_pid
        assert connection.connection.driver_connection.autocommit is False
    assert engine.pool.checkedout() == 0


def test_a_hold_that_ends_hands_the_reader_back(app, monkeypatch):
    engine = get_engine(app)
    monkeypatch.setattr(readers_of(engine), "hold_seconds", 0.0)
    checkouts = pool_events(engine, "checkout")

    for _ in range(3):
        read_rows(engine, "SELECT 1", {})

    assert checkouts == [1, 1, 1]  # each read found its hold over and checked out afresh
    assert engine.pool.checkedout() == 1  # the last one, still held


def test_held_readers_leave_the_pool_room_for_writes(app):
    engine = get_engine(app)
    size = engine.pool.size()
    threads_reading = size + 2
    all_read = threading.Barrier(threads_reading + 1)
    writes_done = threading.Event()
    answers: list[tuple] = []

    def read_then_wait() -> None:
        answers.extend(read_rows(engine, "SELECT 1", {}))
        all_read.wait(timeout=10)
        writes_done.wait(timeout=10)

    threads = [threading.Thread(target=read_then_wait) for _ in range(threads_reading)]
    for thread in threads:
        thread.start()
    all_read.wait(timeout=10)
    try:
        held = readers_of(engine).held_count()
        with engine.connect() as connection:  # a write's checkout is not starved
            assert connection.execute(text("SELECT 2")).scalar() == 2
    finally:
        writes_done.set()
        for thread in threads:
            thread.join(timeout=10)

    assert answers == [(1,)] * threads_reading
    assert held == size - 1
    assert readers_of(engine).held_count() == 0  # the threads ended: their readers went back
    assert engine.pool.checkedout() == 0


def test_dispose_closes_every_held_reader_and_reads_go_on(app):
    engine = get_engine(app)
    [[before]] = read_rows(engine, BACKEND_PID, {})

    engine.dispose()
    [[after]] = read_rows(engine, BACKEND_PID, {})

    assert after != before
    assert backend_ends(engine, before)  # closed, not left open in the old pool
    assert readers_of(engine).held_count() == 1


def test_a_read_with_its_budget_spent_raises_before_taking_a_connection(app):
    engine = get_engine(app)
    checkouts = pool_events(engine, "checkout")
    with app.test_request_context("/"):
        g.dependency_deadline = time.monotonic()
        with pytest.raises(DependencyTimeout, match="PostgreSQL"):
            read_rows(engine, "SELECT 1", {})

    assert checkouts == []


def test_a_read_whose_wait_for_a_connection_spent_the_budget_arms_nothing(app, monkeypatch):
    engine = get_engine(app)
    readers = readers_of(engine)
    take = readers.take

    def slow_take(taken_from):
        taken = take(taken_from)
        time.sleep(0.2)  # the pool was slow to hand it over
        return taken

    monkeypatch.setattr(readers, "take", slow_take)
    with app.test_request_context("/"):
        g.dependency_deadline = time.monotonic() + 0.1
        with pytest.raises(DependencyTimeout, match="PostgreSQL"):
            read_rows(engine, BACKEND_PID, {})
    monkeypatch.undo()

    assert readers.watchdog.armed_count() == 0
    assert read_rows(engine, "SELECT 1", {}) == [(1,)]  # the reader was kept, not cut
    assert readers.held_count() == 1


@pytest.fixture
def busy_pool(app):
    """Every connection the pool may give (its size and overflow) checked out elsewhere."""
    engine = get_engine(app)
    taken = [engine.raw_connection()
             for _ in range(engine.pool.size() + engine.pool._max_overflow)]
    yield taken
    for connection in taken:
        connection.close()


def test_a_wait_for_a_free_connection_counts_against_the_request_budget(app, busy_pool):
    engine = get_engine(app)
    hand_one_back = threading.Timer(0.5, busy_pool.pop().close)
    with app.test_request_context("/"):
        waited_from = time.monotonic()
        hand_one_back.start()
        with engine.connect():
            got_it = time.monotonic()
            deadline = g.dependency_deadline
        budget_seconds = current_settings().request_budget_seconds - ANSWER_RESERVE_SECONDS

    # The budget started when the wait began, not once the connection was handed over.
    assert got_it - waited_from >= 0.5
    assert deadline <= waited_from + budget_seconds + 0.05
    assert deadline < got_it + budget_seconds - 0.4


def test_a_wait_for_a_free_connection_ends_with_the_request_budget(config):
    app = create_app({**config, "DB_POOL_TIMEOUT_SECONDS": "5"})
    engine = get_engine(app)
    exhaust = [engine.raw_connection()
               for _ in range(engine.pool.size() + engine.pool._max_overflow)]
    try:
        with app.test_request_context("/"):
            g.dependency_deadline = time.monotonic() + 0.3
            started = time.monotonic()
            with pytest.raises((PoolTimeoutError, DependencyTimeout)):
                engine.connect()
            waited = time.monotonic() - started
    finally:
        for connection in exhaust:
            connection.close()
        engine.dispose()

    assert 0.25 <= waited < 1.0  # the budget's 0.3 s, not the pool's 5 s
    # Outside a request the pool's own timeout applies, and survives a dispose.
    assert engine.pool.timeout() == 5


@pytest.mark.parametrize(("recycle", "held_for"), [("20", 20), ("3600", 60)])
def test_a_reader_is_held_no_longer_than_the_pool_recycles_connections(config, recycle,
                                                                       held_for):
    app = create_app({**config, "DB_POOL_RECYCLE_SECONDS": recycle})
    try:
        assert readers_of(get_engine(app)).hold_seconds == held_for
    finally:
        get_engine(app).dispose()


def test_a_reader_that_cannot_take_autocommit_goes_back_to_the_pool(app):
    engine = get_engine(app)
    broken: list[int] = []

    @event.listens_for(engine, "checkout")
    def close_the_first(dbapi_connection, *_args) -> None:
        if not broken:
            broken.append(1)
            dbapi_connection.close()  # setting autocommit on it raises

    with pytest.raises(DBAPIError) as refused:
        read_rows(engine, "SELECT 1", {})

    # Back in the pool at once, not when the error's traceback lets go of it.
    assert refused.value.__cause__ is not None
    assert engine.pool.checkedout() == 0
    assert read_rows(engine, "SELECT 1", {}) == [(1,)]


def test_an_invalidated_connection_ends_every_threads_hold(app):
    engine = get_engine(app)
    read_rows(engine, "SELECT 1", {})
    checkouts = pool_events(engine, "checkout")

    with engine.connect() as connection:  # a write's connection, found dead
        connection.invalidate()
    read_rows(engine, "SELECT 1", {})
    read_rows(engine, "SELECT 1", {})

    # The write's checkout, then the reader's: taken afresh once, then held again.
    assert checkouts == [1, 1]
