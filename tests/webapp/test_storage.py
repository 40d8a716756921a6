"""The photo store on its own, against Azurite: calls bounded by the request's deadline, and
conditional deletes that never remove a blob a concurrent review reused."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import g

from webapp.budget import DependencyTimeout


def test_a_delete_after_a_concurrent_reuse_leaves_the_blob(store, blob_names, make_image):
    photo = make_image("PNG")
    ours = store.upload(photo, "png")
    # Another review uploads the same bytes before our clean-up: its touch changes the ETag.
    theirs = store.upload(photo, "png")
    assert (ours.created, theirs.created) == (True, False)
    assert ours.etag and theirs.etag and ours.etag != theirs.etag

    store.delete(ours)

    assert blob_names() == {ours.name}


def test_a_delete_of_an_unchanged_blob_removes_it(store, blob_names, make_image):
    ours = store.upload(make_image("JPEG"), "jpg")

    store.delete(ours)
    store.delete(ours)  # already gone is fine

    assert blob_names() == set()


def test_a_call_still_queued_at_the_deadline_never_runs(app, store, blob_names, make_image):
    stored = store.upload(make_image("PNG", color="red"), "png")
    busy = threading.Event()
    store._calls = ThreadPoolExecutor(1)  # one storage thread, kept busy below
    store._calls.submit(busy.wait, 10)
    try:
        with app.test_request_context("/"):
            g.dependency_deadline = time.monotonic() + 0.3
            with pytest.raises(DependencyTimeout, match="Blob Storage"):
                store.delete(stored)
    finally:
        busy.set()
        store._calls.shutdown(wait=True)

    assert blob_names() == {stored.name}  # the delete was cancelled, not run late


def test_a_call_that_starts_after_its_deadline_is_not_made(store, blob_names, make_image):
    stored = store.upload(make_image("PNG", color="blue"), "png")

    with pytest.raises(DependencyTimeout, match="Blob Storage"):
        store._call_by(time.monotonic() - 0.1, store._delete, stored)

    assert blob_names() == {stored.name}
