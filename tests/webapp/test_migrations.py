"""Migrations: applied under an advisory lock, safe for instances starting at the same time."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from webapp import create_app
from webapp.db import MIGRATION_LOCK_KEY, MIGRATIONS_DIR, get_engine, upgrade_database
from webapp.models import Base

HEAD = "0004"
SCHEMA_TABLES = {"alembic_version", "restaurants", "reviews"}


@pytest.fixture
def empty_database(postgres, app_role) -> Iterator[str]:
    """A database with no schema at all, owned by the app's role."""
    name = f"webapp_empty_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name, owner=app_role)
    yield name
    postgres.drop_database(name)


@pytest.fixture
def new_instance(
    empty_database, app_database_url, azurite, container_name, build_config
) -> Iterator[Callable[[], Flask]]:
    """new_instance() -> a separate app (own engine and pool) on the empty database."""
    apps: list[Flask] = []
    config = build_config(
        app_database_url(empty_database), azurite.connection_string, container_name
    )

    def new() -> Flask:
        apps.append(create_app(config))
        return apps[-1]

    yield new
    for app in apps:
        get_engine(app).dispose()
        app.extensions["photo_store"].close()


def public_tables(postgres, database: str) -> set[str]:
    rows = postgres.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", database=database
    )
    return {name for (name,) in rows}


def test_upgrade_creates_the_schema_and_is_idempotent(postgres, empty_database, new_instance):
    app = new_instance()
    upgrade_database(app)
    upgrade_database(app)

    assert public_tables(postgres, empty_database) == SCHEMA_TABLES
    version = postgres.execute("SELECT version_num FROM alembic_version", database=empty_database)
    assert version == [(HEAD,)]


def test_migrations_match_the_models(new_instance):
    app = new_instance()
    upgrade_database(app)
    with get_engine(app).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_instances_starting_together_migrate_once_without_errors(
    postgres, empty_database, new_instance
):
    instances = [new_instance() for _ in range(4)]
    start = threading.Barrier(len(instances))
    errors: list[BaseException] = []

    def boot(app: Flask) -> None:
        start.wait()
        try:
            upgrade_database(app)
        except BaseException as error:  # reported below with the test's assertion
            errors.append(error)

    threads = [threading.Thread(target=boot, args=(app,)) for app in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert public_tables(postgres, empty_database) == SCHEMA_TABLES
    assert postgres.execute("SELECT version_num FROM alembic_version", database=empty_database) == [
        (HEAD,)
    ]


def test_migration_waits_for_the_advisory_lock(postgres, empty_database, new_instance):
    app = new_instance()
    finished = threading.Event()
    with postgres.connect(empty_database) as other_instance:
        # Another instance is migrating: it holds the lock.
        other_instance.cursor().execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))

        def migrate() -> None:
            upgrade_database(app)
            finished.set()

        thread = threading.Thread(target=migrate)
        thread.start()
        assert not finished.wait(timeout=1.0), "upgrade did not wait for the lock"
        assert public_tables(postgres, empty_database) == set()

        other_instance.cursor().execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        thread.join(timeout=30)

    assert finished.is_set()
    assert public_tables(postgres, empty_database) == SCHEMA_TABLES


def test_flask_migrate_command(postgres, empty_database, new_instance):
    result = new_instance().test_cli_runner().invoke(args=["migrate"])

    assert result.exit_code == 0, result.output
    assert "Database schema is up to date." in result.output
    assert public_tables(postgres, empty_database) == SCHEMA_TABLES


def commit_deadline_objects(postgres, database: str) -> tuple[set[str], set[str]]:
    triggers = postgres.execute(
        "SELECT tgname FROM pg_trigger WHERE tgname LIKE '%commit_deadline'", database=database)
    functions = postgres.execute(
        "SELECT proname FROM pg_proc WHERE proname = 'refuse_commit_past_deadline'",
        database=database)
    return {name for (name,) in triggers}, {name for (name,) in functions}


def downgrade_database(app: Flask, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    with get_engine(app).begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_the_commit_deadline_migration_round_trips(postgres, empty_database, new_instance):
    app = new_instance()
    upgrade_database(app)
    present = ({"restaurants_commit_deadline", "reviews_commit_deadline"},
               {"refuse_commit_past_deadline"})
    assert commit_deadline_objects(postgres, empty_database) == present

    downgrade_database(app, "0001")
    assert commit_deadline_objects(postgres, empty_database) == (set(), set())
    assert public_tables(postgres, empty_database) == SCHEMA_TABLES  # 0001's tables stay
    assert postgres.execute("SELECT version_num FROM alembic_version",
                            database=empty_database) == [("0001",)]

    upgrade_database(app)
    assert commit_deadline_objects(postgres, empty_database) == present
    # And the re-created trigger works: a commit past its stamped deadline is refused.
    with pytest.raises(OperationalError, match="commit refused"), \
            get_engine(app).begin() as connection:
        connection.execute(text("SELECT set_config('webapp.commit_deadline', "
                                "(clock_timestamp() - interval '1 second')::text, true)"))
        connection.execute(text("INSERT INTO restaurants (name, street_address) "
                                "VALUES ('Late', '1 A')"))


def review_columns(postgres, database: str) -> set[str]:
    rows = postgres.execute("SELECT column_name FROM information_schema.columns "
                            "WHERE table_name = 'reviews'", database=database)
    return {name for (name,) in rows}


def test_the_submission_token_migration_round_trips(postgres, empty_database, new_instance):
    app = new_instance()
    upgrade_database(app)
    added = {"submission_token", "photo_width", "photo_height"}
    assert added <= review_columns(postgres, empty_database)

    downgrade_database(app, "0002")
    assert not added & review_columns(postgres, empty_database)
    assert commit_deadline_objects(postgres, empty_database)[0]  # 0002's triggers stay

    upgrade_database(app)
    # And the constraint works again: a second row with the same token is refused.
    insert = text("INSERT INTO restaurants (name, street_address, submission_token) "
                  "VALUES ('Twice', '1 A', '2b8f4e1c-0d3a-4f5e-9a7b-6c5d4e3f2a1b')")
    with get_engine(app).begin() as connection:
        connection.execute(insert)
    with pytest.raises(IntegrityError, match="uq_restaurants_submission_token"), \
            get_engine(app).begin() as connection:
        connection.execute(insert)


def search_and_sort_objects(postgres, database: str) -> set[str]:
    """The columns, indexes, triggers and functions migration 0004 adds, by name."""
    rows = postgres.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'restaurants' "
        "AND column_name IN ('name_folded', 'review_count', 'rating_sum', 'average_rating') "
        "UNION ALL SELECT indexname FROM pg_indexes WHERE indexname IN "
        "('ix_restaurants_rating', 'ix_restaurants_review_count', "
        "'ix_restaurants_name_folded_trgm') "
        "UNION ALL SELECT tgname FROM pg_trigger WHERE tgname LIKE 'reviews_aggregates_%%' "
        "UNION ALL SELECT proname FROM pg_proc WHERE proname IN "
        "('fold_name', 'keep_restaurant_review_aggregates')", database=database)
    return {name for (name,) in rows}


def test_the_search_and_sort_migration_round_trips(postgres, empty_database, new_instance):
    app = new_instance()
    upgrade_database(app, "0003")
    with get_engine(app).begin() as connection:  # data from before: aggregated and folded
        connection.execute(text("INSERT INTO restaurants (name, street_address) "
                                "VALUES ('Crêperie Éclair', '1 A')"))
        connection.execute(text("INSERT INTO reviews (restaurant_id, reviewer_name, rating, "
                                "review_text) SELECT id, 'Ada', 4, 'Yes' FROM restaurants"))
    upgrade_database(app)
    added = search_and_sort_objects(postgres, empty_database)
    assert len(added) == 12  # 4 columns, 3 indexes, 3 triggers, 2 functions
    assert postgres.execute("SELECT name_folded, review_count, rating_sum, average_rating "
                            "FROM restaurants", database=empty_database) == [
        ("creperie eclair", 1, 4, 4.0)]

    downgrade_database(app, "0003")
    assert search_and_sort_objects(postgres, empty_database) == set()
    assert "photo_width" in review_columns(postgres, empty_database)  # 0003's columns stay

    upgrade_database(app)
    assert search_and_sort_objects(postgres, empty_database) == added
    # And the triggers work again: a new review is counted in the same transaction.
    with get_engine(app).begin() as connection:
        connection.execute(text("INSERT INTO reviews (restaurant_id, reviewer_name, rating, "
                                "review_text) SELECT id, 'Bo', 2, 'Ok' FROM restaurants"))
        counted = connection.execute(text("SELECT review_count, average_rating "
                                          "FROM restaurants")).one()
    assert tuple(counted) == (2, 3.0)
