"""The orphaned-photo sweep: delete photo blobs no review refers to, once they are old enough.

A review whose insert fails deletes the photo blob it had just uploaded (reviews.py), unless
the database or storage is down at that moment: then the blob stays behind. This sweep
removes such blobs, and never one a review is about to use:

- a blob younger than ``min_age`` is left alone: an upload is followed by its review's commit
  within one request budget (seconds), the default age is an hour;
- a blob reused by a new review (same bytes, same name) is touched by PhotoStore.upload before
  that review is saved, which changes its ETag: the sweep deletes a blob only if its ETag is
  still the one it listed;
- references are read after the listing, so a review committed before then keeps its photo.

Only one instance sweeps at a time: the sweep runs in a transaction holding a PostgreSQL
advisory lock that it tries for, never waits for (others skip that round).

    flask --app webapp sweep-photos [--min-age-minutes 60]
    python -m webapp.sweep [--min-age-minutes 60]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import Connection, select, text

from .db import get_engine
from .models import Review
from .storage import PhotoStore, StoredBlob

logger = logging.getLogger(__name__)

DEFAULT_MIN_AGE = timedelta(hours=1)
# The youngest a blob may be and still be swept: an upload's review commits within one request
# budget (seconds, webapp/budget.py); many budgets of margin, so a blob uploaded and not yet
# committed is never taken for an orphan.
MIN_SAFE_AGE_MINUTES = 5.0
# Any constant all instances share; distinct from db.MIGRATION_LOCK_KEY.
SWEEP_LOCK_KEY = 0x50686F746F5377  # "PhotoSw"
# Names per reference query: one statement per batch, whatever the number of blobs.
BATCH_SIZE = 500
# The sweep is background work: not bound by a visitor's request budget.
SWEEP_STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = '5min'"


@dataclass
class SweepResult:
    examined: int = 0
    deleted: list[str] = field(default_factory=list)
    too_young: int = 0
    referenced: int = 0
    changed: int = 0  # reused (or deleted by someone else) after the listing

    def summary(self) -> str:
        return (f"examined {self.examined} photo blobs: deleted {len(self.deleted)} orphans, "
                f"kept {self.referenced} in use, {self.too_young} younger than the safe age, "
                f"{self.changed} changed since listed")


def sweep_orphaned_photos(
    app: Flask,
    min_age: timedelta = DEFAULT_MIN_AGE,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SweepResult | None:
    """Delete old unreferenced photo blobs; None when another instance is sweeping."""
    if min_age < timedelta(minutes=MIN_SAFE_AGE_MINUTES):
        raise ValueError(_too_young_message(min_age.total_seconds() / 60))
    store: PhotoStore = app.extensions["photo_store"]
    with get_engine(app).begin() as connection:
        connection.execute(text(SWEEP_STATEMENT_TIMEOUT))
        locked = connection.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SWEEP_LOCK_KEY}
        )
        if not locked:
            logger.info("Photo sweep skipped: another instance is sweeping")
            return None
        result = _sweep(connection, store, clock() - min_age)
    logger.info("Photo sweep: %s", result.summary())
    return result


def _sweep(connection: Connection, store: PhotoStore, cutoff: datetime) -> SweepResult:
    result = SweepResult()
    old: list[StoredBlob] = []
    for blob in store.blobs():
        result.examined += 1
        if blob.last_modified <= cutoff:
            old.append(blob)
        else:
            result.too_young += 1
    for batch in _batches(old, BATCH_SIZE):
        in_use = _referenced(connection, [blob.name for blob in batch])
        for blob in batch:
            if blob.name in in_use:
                result.referenced += 1
            elif store.delete_if_unchanged(blob):
                result.deleted.append(blob.name)
            else:
                result.changed += 1
    return result


def _too_young_message(minutes: float) -> str:
    return (f"--min-age-minutes must be at least {MIN_SAFE_AGE_MINUTES:g} (got {minutes:g}): "
            "a younger blob may belong to a review that is still being saved")


def _referenced(connection: Connection, names: list[str]) -> set[str]:
    query = select(Review.photo_name).where(Review.photo_name.in_(names)).distinct()
    return set(connection.scalars(query))


def _batches(items: Iterable[StoredBlob], size: int) -> Iterator[list[StoredBlob]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


@click.command("sweep-photos")
@click.option("--min-age-minutes", type=float, default=60.0, show_default=True,
              help="Only blobs last modified at least this long ago are considered "
                   f"(at least {MIN_SAFE_AGE_MINUTES:g}).")
@with_appcontext
def sweep_command(min_age_minutes: float) -> None:
    """Delete photo blobs that no review refers to."""
    if min_age_minutes < MIN_SAFE_AGE_MINUTES:
        raise click.BadParameter(_too_young_message(min_age_minutes))
    result = sweep_orphaned_photos(current_app, timedelta(minutes=min_age_minutes))
    if result is None:
        click.echo("Another instance is sweeping; nothing done.")
    else:
        click.echo(result.summary())


def init_app(app: Flask) -> None:
    app.cli.add_command(sweep_command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webapp.sweep",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--min-age-minutes", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.min_age_minutes < MIN_SAFE_AGE_MINUTES:
        parser.error(_too_young_message(args.min_age_minutes))
    from . import create_app

    result = sweep_orphaned_photos(create_app(), timedelta(minutes=args.min_age_minutes))
    print("Another instance is sweeping; nothing done." if result is None else result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
