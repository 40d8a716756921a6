"""Photos are served through the site, so they work when the storage account is private."""

from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError
from flask import Blueprint, Response, abort, request

from .storage import current_photo_store, parse_photo_name

ONE_YEAR_SECONDS = 365 * 24 * 60 * 60

bp = Blueprint("photos", __name__)


@bp.get("/photos/<name>")
def show(name: str):
    match = parse_photo_name(name)
    if match is None:
        abort(404)
    # The name is the SHA-256 of the bytes, so it is a strong ETag and the content never changes.
    etag = match["digest"]
    response = Response(status=304) if _client_has(etag) else _stream(name)
    response.set_etag(etag)
    response.cache_control.public = True
    response.cache_control.max_age = ONE_YEAR_SECONDS
    response.cache_control.immutable = True
    return response


def _client_has(etag: str) -> bool:
    """Whether If-None-Match lists this ETag (weak comparison, as RFC 9110 asks for GET).

    "*" is ignored: it means "any current representation", and this answer is given without
    asking storage whether the blob exists, so it would be a 304 for a missing photo.
    """
    tags = request.if_none_match
    return tags.is_strong(etag) or tags.is_weak(etag)


def _stream(name: str) -> Response:
    try:
        download = current_photo_store().download(name)
    except ResourceNotFoundError:
        abort(404)
    response = Response(download.chunks, mimetype=download.content_type, direct_passthrough=True)
    response.content_length = download.size
    return response
