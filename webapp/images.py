"""Validate uploaded photos by decoding them, never by trusting the file name or Content-Type."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# Pillow format name -> blob name extension (storage.CONTENT_TYPES maps it to a media type).
ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
# Far above any phone camera, far below what would exhaust a worker's memory when decoded.
MAX_PIXELS = 50_000_000


class PhotoRejected(Exception):
    """The upload is not an acceptable photo; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ValidatedPhoto:
    data: bytes
    extension: str


def describe_size(limit: int) -> str:
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"


def too_large_message(limit: int) -> str:
    return f"The photo is larger than {describe_size(limit)}. Choose a smaller photo."


def validate_photo(data: bytes, max_bytes: int) -> ValidatedPhoto:
    if not data:
        raise PhotoRejected("The photo file is empty.")
    if len(data) > max_bytes:
        raise PhotoRejected(too_large_message(max_bytes), status=413)
    image_format = _decode(data)
    return ValidatedPhoto(data=data, extension=ALLOWED_FORMATS[image_format])


def _decode(data: bytes) -> str:
    """Fully decode the image with only the allowed decoders; return its format name."""
    allowed = list(ALLOWED_FORMATS)
    try:
        with Image.open(io.BytesIO(data), formats=allowed) as image:
            image_format = image.format
            if image.width * image.height > MAX_PIXELS:
                raise PhotoRejected("The photo has too many pixels. Choose a smaller photo.")
            image.verify()
        # verify() checks structure only; load() decodes every pixel, catching truncated files.
        with Image.open(io.BytesIO(data), formats=[image_format]) as image:
            image.load()
    except UnidentifiedImageError:
        raise PhotoRejected(
            "The photo must be a JPEG, PNG or WebP image; this file is not one of those."
        ) from None
    except Image.DecompressionBombError:
        raise PhotoRejected("The photo has too many pixels. Choose a smaller photo.") from None
    except (OSError, SyntaxError, ValueError):
        raise PhotoRejected("The photo file is damaged or incomplete.") from None
    return image_format
