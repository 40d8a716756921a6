"""The orphaned-photo sweep, against real PostgreSQL and Azurite, including its races."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from webapp.db import get_engine
from webapp.sweep import SWEEP_LOCK_KEY, main, sweep_orphaned_photos

AN_HOUR_LATER = timedelta(hours=1, minutes=5)


def later(delta: timedelta = AN_HOUR_LATER):
    """A clock that reads `delta` from now: every blob stored so far looks that old."""
    return lambda: datetime.now(UTC) + delta


def test_old_orphans_are_deleted_and_photos_in_use_kept(
    app, store, blob_names, add_restaurant, add_review, make_image, run_sql
):
    restaurant_id = add_restaurant()
    assert add_review(restaurant_id, photo=(make_image("PNG"), "kept.png")).status_code == 303
    (in_use,) = run_sql("SELECT photo_name FROM reviews")[0]
    orphan = store.upload(make_image("JPEG", color="red"), "jpg").name

    result = sweep_orphaned_photos(app, clock=later())

    assert result.deleted == [orphan]
    assert (result.examined, result.referenced, result.too_young) == (2, 1, 0)
    assert blob_names() == {in_use}


def test_a_photo_uploaded_but_not_yet_saved_with_its_review_is_not_swept(
    app, store, blob_names, make_image
):
    # A request has uploaded the photo and has not committed its review yet.
    pending = store.upload(make_image("PNG"), "png").name

    result = sweep_orphaned_photos(app)  # the real clock and the default safe age

    assert result.deleted == []
    assert result.too_young == 1
    assert blob_names() == {pending}


def test_a_blob_reused_after_the_listing_is_not_swept(
    app, store, blob_names, make_image, monkeypatch
):
    """The sweep lists an old orphan, then a new review reuses its bytes before the delete."""
    photo = make_image("WEBP")
    name = store.upload(photo, "webp").name
    listing = list(store.blobs())
    # The new review's upload finds the blob (same bytes) and touches it; its insert is still
    # to come, so the database has no reference the sweep could see.
    reused = store.upload(photo, "webp")
    assert (reused.name, reused.created) == (name, False)
    monkeypatch.setattr(type(store), "blobs", lambda _self: iter(listing))

    result = sweep_orphaned_photos(app, clock=later())

    assert result.deleted == []
    assert result.changed == 1
    assert blob_names() == {name}


def test_a_reused_blob_swept_just_before_is_uploaded_again(app, store, container, make_image):
    photo = make_image("PNG", color="blue")
    name = store.upload(photo, "png").name
    assert sweep_orphaned_photos(app, clock=later()).deleted == [name]

    again = store.upload(photo, "png")

    assert (again.name, again.created) == (name, True)
    assert container.download_blob(name).readall() == photo


def test_only_one_instance_sweeps_at_a_time(app, store, blob_names, make_image):
    orphan = store.upload(make_image("PNG"), "png").name
    with get_engine(app).begin() as other_instance:
        other_instance.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SWEEP_LOCK_KEY})

        assert sweep_orphaned_photos(app, clock=later()) is None

    assert blob_names() == {orphan}
    assert sweep_orphaned_photos(app, clock=later()).deleted == [orphan]


def test_the_cli_command_reports_what_it_did(app, store, blob_names, make_image):
    name = store.upload(make_image("PNG"), "png").name

    output = app.test_cli_runner().invoke(args=["sweep-photos", "--min-age-minutes", "5"]).output

    assert "examined 1 photo blobs: deleted 0 orphans" in output
    assert "1 younger than the safe age" in output
    assert blob_names() == {name}


@pytest.mark.parametrize("minutes", ["0", "4.9", "-1"])
def test_a_minimum_age_below_the_safe_floor_is_refused(app, store, blob_names, make_image,
                                                         minutes):
    name = store.upload(make_image("PNG"), "png").name

    result = app.test_cli_runner().invoke(args=["sweep-photos", "--min-age-minutes", minutes])

    assert result.exit_code != 0
    assert "--min-age-minutes must be at least 5" in result.output
    assert "still being saved" in result.output
    assert blob_names() == {name}


def test_the_module_entry_point_refuses_a_minimum_age_below_the_floor(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--min-age-minutes", "0"])
    assert exit_info.value.code == 2
    assert "--min-age-minutes must be at least 5" in capsys.readouterr().err


def test_the_function_refuses_a_minimum_age_below_the_floor(app, store, blob_names, make_image):
    name = store.upload(make_image("PNG"), "png").name
    with pytest.raises(ValueError, match="at least 5"):
        sweep_orphaned_photos(app, min_age=timedelta(0), clock=later())
    assert blob_names() == {name}
