"""The photo byte cache: content-addressed photos served from memory, bounded, large ones streamed.

Revalidations with the photo's ETag never reach storage at all.
"""

from __future__ import annotations

import hashlib

import pytest

from devtools.services import AzuriteServer, free_port
from webapp.storage import current_photo_store


@pytest.fixture
def config(config: dict, request) -> dict:
    return {**config, **getattr(request, "param", {})}  # a test's own settings (indirect=True)


@pytest.fixture
def store_photo(app, make_image):
    """store_photo(color) -> (url, bytes) of a PNG stored the way the site stores uploads."""

    def store(color: str = "teal", size: tuple[int, int] = (12, 8)) -> tuple[str, bytes]:
        data = make_image("PNG", size=size, color=color)
        with app.app_context():
            name = current_photo_store().upload(data, "png").name
        return f"/photos/{name}", data

    return store


def test_a_photo_is_served_from_memory_after_the_first_request(client, app, store_photo,
                                                               container):
    url, data = store_photo()
    first = client.get(url)
    assert first.status_code == 200 and first.data == data

    container.delete_blob(url.rsplit("/", 1)[-1])  # storage no longer has it...
    again = client.get(url)
    assert again.status_code == 200  # ...but this process does, and the bytes cannot change
    assert again.data == data
    assert again.headers["Content-Type"] == "image/png"
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Cache-Control"] == first.headers["Cache-Control"]
    assert again.headers["Content-Length"] == str(len(data))


@pytest.fixture
def storage_down(config) -> None:
    """Point the app's storage at a port where nothing listens (request before `client`)."""
    nowhere = AzuriteServer(None, port=free_port())  # never started
    config["AZURE_STORAGE_CONNECTION_STRING"] = nowhere.connection_string


def test_a_revalidation_is_answered_without_storage(storage_down, client):
    digest = hashlib.sha256(b"any photo").hexdigest()
    url = f"/photos/{digest}.jpg"
    assert client.get(url).status_code == 503  # storage really is unreachable

    revalidated = client.get(url, headers={"If-None-Match": f'"{digest}"'})
    assert revalidated.status_code == 304
    assert revalidated.headers["ETag"] == f'"{digest}"'
    assert "immutable" in revalidated.headers["Cache-Control"]


@pytest.mark.parametrize("config", [{"PHOTO_CACHE_MAX_PHOTO_BYTES": 50}], indirect=True)
def test_photos_above_the_size_limit_are_streamed_every_time(client, app, store_photo,
                                                            container):
    url, data = store_photo()
    assert len(data) > 50
    served = client.get(url)
    assert served.status_code == 200 and served.data == data
    assert served.headers["Content-Length"] == str(len(data))
    assert len(app.extensions["photo_cache"]) == 0

    container.delete_blob(url.rsplit("/", 1)[-1])
    assert client.get(url).status_code == 404  # asked storage again


@pytest.mark.parametrize("config", [{"PHOTO_CACHE_MAX_ENTRIES": 2}], indirect=True)
def test_the_photo_cache_is_bounded_in_entries(client, app, store_photo):
    urls = [store_photo(color)[0] for color in ("red", "green", "blue")]
    for url in urls:
        assert client.get(url).status_code == 200
    cache = app.extensions["photo_cache"]
    assert len(cache) == 2
    assert cache.get(urls[0].rsplit("/", 1)[-1]) is None  # the least recently used went


# The test photos are 76-78 bytes each: room for two of them, not three.
@pytest.mark.parametrize("config", [{"PHOTO_CACHE_MAX_BYTES": 160}], indirect=True)
def test_the_photo_cache_is_bounded_in_bytes(client, app, store_photo):
    photos = [store_photo(color) for color in ("red", "green", "blue")]
    cache = app.extensions["photo_cache"]
    for url, data in photos:
        assert client.get(url).data == data
        assert cache.size_bytes <= 160
    assert len(cache) == 2
    assert cache.get(photos[0][0].rsplit("/", 1)[-1]) is None


def test_bytes_that_do_not_match_their_name_are_not_kept(client, app, container, make_image):
    wrong_name = hashlib.sha256(b"something else").hexdigest() + ".png"
    container.create_container()
    container.upload_blob(wrong_name, make_image("PNG"))

    assert client.get(f"/photos/{wrong_name}").status_code == 200
    assert len(app.extensions["photo_cache"]) == 0
