"""Photos are served through the site, so they work when the storage account is private.

A photo's name is the SHA-256 of its bytes (storage.py), so a name always means the same bytes:
small photos are kept in a per-process byte cache (bounded in entries and bytes, least recently
used out) that can never go stale, and a revalidation with the photo's ETag is answered without
asking storage at all. Photos larger than PHOTO_CACHE_MAX_PHOTO_BYTES are streamed every time.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from azure.core.exceptions import ResourceNotFoundError
from flask import Blueprint, Flask, Response, abort, current_app, request

from .bounded_cache import BoundedCache
from .config import PhotoCacheSettings, current_settings
from .storage import (
    IMMUTABLE_CACHE_CONTROL,
    PhotoDownload,
    current_photo_store,
    parse_photo_name,
)

logger = logging.getLogger(__name__)

bp = Blueprint("photos", __name__)


@dataclass(frozen=True)
class CachedPhoto:
    content_type: str
    data: bytes


def init_app(app: Flask, settings: PhotoCacheSettings) -> None:
    app.extensions["photo_cache"] = BoundedCache[CachedPhoto](
        max_entries=settings.max_entries,
        max_bytes=settings.max_bytes,
        size_of=lambda photo: len(photo.data),
    )


def photo_cache() -> BoundedCache[CachedPhoto]:
    return current_app.extensions["photo_cache"]


@bp.get("/photos/<name>")
def show(name: str):
    match = parse_photo_name(name)
    if match is None:
        abort(404)
    # The name is the SHA-256 of the bytes, so it is a strong ETag and the content never changes.
    etag = match["digest"]
    if _client_has(etag):
        response = Response(status=304)
    else:
        photo = photo_cache().get(name)
        response = _serve(photo) if photo is not None else _fetch(name, etag)
    # Set as plain strings: the cache_control and set_etag helpers re-render the header on
    # every attribute, a visible share of a 304's cost.
    response.headers["ETag"] = f'"{etag}"'
    response.headers["Cache-Control"] = IMMUTABLE_CACHE_CONTROL
    return response


def _client_has(etag: str) -> bool:
    """Whether If-None-Match lists this ETag (weak comparison, as RFC 9110 asks for GET).

    "*" is ignored: it means "any current representation", and this answer is given without
    asking storage whether the blob exists, so it would be a 304 for a missing photo.
    """
    header = request.headers.get("If-None-Match")
    if header is None:
        return False  # most requests: nothing to parse
    if header == f'"{etag}"':
        return True  # what a browser sends back: the ETag exactly as given
    tags = request.if_none_match
    return tags.is_strong(etag) or tags.is_weak(etag)


def _serve(photo: CachedPhoto) -> Response:
    return Response(photo.data, mimetype=photo.content_type)


def _fetch(name: str, digest: str) -> Response:
    try:
        download = current_photo_store().download(name)
    except ResourceNotFoundError:
        abort(404)
    if download.size > current_settings().photo_cache.max_photo_bytes:
        return _stream(download)
    photo = CachedPhoto(download.content_type, b"".join(download.chunks))
    # Only bytes that match their name are kept: the cache keeps them for the process's life.
    if hashlib.sha256(photo.data).hexdigest() == digest:
        photo_cache().put(name, photo)
    else:
        logger.warning("Photo blob %s does not match its name; not cached", name)
    return _serve(photo)


def _stream(download: PhotoDownload) -> Response:
    response = Response(download.chunks, mimetype=download.content_type, direct_passthrough=True)
    response.content_length = download.size
    return response
