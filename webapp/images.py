"""Uploaded photos: decoded to check them, then re-encoded so only the picture is stored.

Never trust the file name or Content-Type: the bytes are decoded with the JPEG, PNG and WebP
decoders only. What is stored is always a fresh encoding of the decoded pixels, turned upright
by its EXIF orientation: no EXIF (GPS position, camera serial), XMP, comments or text chunks,
and nothing hidden after the image data. The ICC colour profile is kept: it holds no personal
data and without it colours shift. A JPEG is re-encoded with its own quantisation tables and
chroma subsampling (what Pillow's quality="keep" does), so its quality and size stay close to
the original's; PNG is lossless; WebP is re-encoded at WEBP_QUALITY.

Decoding is bounded in memory per process (DecodeBudget): each photo's cost is estimated from
its header before a pixel is decoded, and a photo waits for room or is refused with a 503 the
visitor can retry. Large JPEGs are decoded at a reduced scale (libjpeg's DCT scaling) instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from flask import Flask, current_app
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

# Pillow format name -> blob name extension (storage.CONTENT_TYPES maps it to a media type).
# MPO is what Pillow calls a JPEG with extra pictures (depth map, preview) that many phone
# cameras write: its primary picture is stored as a plain JPEG.
ALLOWED_FORMATS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp"}
SAVE_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
# The only decoders Pillow may try (an MPO is opened by the JPEG one).
DECODERS = list(SAVE_FORMATS.values())
# Far above any phone camera; a header claiming more is refused before anything is decoded.
MAX_PIXELS = 50_000_000
# JPEGs above this are decoded at 1/2, 1/4 or 1/8 scale until at or below it (and until their
# decode cost fits the budget): libjpeg scales while decoding, so the full-size pixels never
# exist. 12 Mpx phone photos are kept as they are.
JPEG_FULL_SCALE_MAX_PIXELS = 16_000_000
JPEG_SCALES = (1, 2, 4, 8)
WEBP_QUALITY = 90
JPEG_QUALITY_WITHOUT_TABLES = 90
# Bytes Pillow holds per pixel in each mode (RGB is stored in four bytes like RGBA).
ONE_BYTE_MODES = frozenset({"1", "L", "P"})
TWO_BYTE_MODES = frozenset({"I;16", "I;16B", "I;16L"})
# Measured (peak RSS of validate_photo on 12 Mpx photos, turned and not): libjpeg keeps a
# progressive JPEG's coefficients, two bytes per pixel per component at full size, until the
# last scan; libwebp's decoder keeps its canvases while its encoder works, about 15.5 bytes per
# pixel together on top of Pillow's images (at WEBP_METHOD 0: the default, 4, takes 13 more).
PROGRESSIVE_JPEG_BYTES_PER_COMPONENT = 2
WEBP_CODEC_BYTES_PER_PIXEL = 16
WEBP_METHOD = 0
# Modes the PNG encoder writes; other decoded modes are converted first.
PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16", "I;16B"})

NOT_AN_IMAGE = "The photo must be a JPEG, PNG or WebP image; this file is not one of those."
TOO_MANY_PIXELS = "The photo has too many pixels. Choose a smaller photo."
DAMAGED = "The photo file is damaged or incomplete."
ANIMATED = "The photo is animated. Choose a still photo (a JPEG, PNG or WebP image)."
BUSY = ("The site is busy processing other photos and could not take yours. Nothing was saved: "
        "please send the form again in a moment.")
BUSY_RETRY_AFTER_SECONDS = 5
# glibc's mallopt() option (malloc.h) and the size from which an allocation gets a mapping of
# its own, returned to the system as soon as it is freed (see _unmap_freed_pixels).
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024

logger = logging.getLogger(__name__)


class PhotoRejected(Exception):
    """The upload is not an acceptable photo; ``status`` is the HTTP status to answer with.

    ``retry_after`` (seconds) is set when the same photo may succeed later (a 503).
    """

    def __init__(self, message: str, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class ValidatedPhoto:
    data: bytes
    extension: str
    width: int  # of the stored, upright picture
    height: int


class DecodeBudget:
    """Bytes of decoded pixels this process may hold at once, shared by its request threads.

    A photo reserves its estimated cost before decoding and gives it back when its new encoding
    is written. When the budget is full it waits up to ``wait_seconds`` for room, then gives up.
    """

    def __init__(self, capacity_bytes: int, wait_seconds: float) -> None:
        self.capacity_bytes = capacity_bytes
        self._wait_seconds = wait_seconds
        self._in_use = 0
        self._changed = threading.Condition()

    @property
    def in_use_bytes(self) -> int:
        with self._changed:
            return self._in_use

    @contextlib.contextmanager
    def reserve(self, cost: int) -> Iterator[None]:
        """Hold `cost` bytes for the block; PhotoRejected (503) if no room came in time."""
        with self._changed:
            fits = self._changed.wait_for(
                lambda: self._in_use + cost <= self.capacity_bytes, timeout=self._wait_seconds
            )
            if not fits:
                raise PhotoRejected(BUSY, status=503, retry_after=BUSY_RETRY_AFTER_SECONDS)
            self._in_use += cost
        try:
            yield
        finally:
            with self._changed:
                self._in_use -= cost
                self._changed.notify_all()


def init_app(app: Flask, capacity_bytes: int, wait_seconds: float) -> None:
    app.extensions["decode_budget"] = DecodeBudget(capacity_bytes, wait_seconds)
    unmap_freed_pixels()


def unmap_freed_pixels() -> None:
    """Make glibc hand large freed buffers (pixels, codec canvases) back to the system at once.

    By default glibc raises its mmap threshold to the largest block freed so far (up to 32 MB),
    so later pixel buffers land in the request thread's own heap, which only shrinks from its
    top: under a burst of uploads a worker kept several photos' worth of freed memory, one per
    thread (measured: 386-497 MB instead of 192 MB with one photo decoded at a time). A fixed
    threshold turns that off. Elsewhere than glibc (musl has no mallopt) nothing changes.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        logger.info("Not glibc: large freed buffers are left to the system allocator")
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def current_decode_budget() -> DecodeBudget:
    return current_app.extensions["decode_budget"]


def describe_size(limit: int) -> str:
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"


def too_large_message(limit: int) -> str:
    return f"The photo is larger than {describe_size(limit)}. Choose a smaller photo."


def validate_photo(data: bytes, max_bytes: int, budget: DecodeBudget) -> ValidatedPhoto:
    """The photo as it will be stored: upright, re-encoded, without metadata."""
    if not data:
        raise PhotoRejected("The photo file is empty.")
    if len(data) > max_bytes:
        raise PhotoRejected(too_large_message(max_bytes), status=413)
    try:
        with Image.open(io.BytesIO(data), formats=DECODERS) as image:
            extension = _prepare(image, len(data), budget.capacity_bytes)
            cost = decode_cost(image, len(data))
            if cost > budget.capacity_bytes:
                raise PhotoRejected(TOO_MANY_PIXELS)
            with budget.reserve(cost):
                return _reencode(image, extension)
    except PhotoRejected:
        raise
    except UnidentifiedImageError:
        raise PhotoRejected(NOT_AN_IMAGE) from None
    except Image.DecompressionBombError:
        raise PhotoRejected(TOO_MANY_PIXELS) from None
    except MemoryError:
        raise PhotoRejected(BUSY, status=503, retry_after=BUSY_RETRY_AFTER_SECONDS) from None
    except Exception as error:
        # Decoders and metadata parsers fail in many ways on hostile files (OSError for a
        # truncated one, struct.error or SyntaxError for broken EXIF...): all are the file's.
        # Logged as a warning: a bug of ours would show here as every photo refused.
        logger.warning("Photo refused as damaged: %s", type(error).__name__)
        raise PhotoRejected(DAMAGED) from None


def _prepare(image: Image.Image, encoded_size: int, capacity_bytes: int) -> str:
    """Refuse what the header gives away, scale a large JPEG down; the blob's extension."""
    if image.width * image.height > MAX_PIXELS:
        raise PhotoRejected(TOO_MANY_PIXELS)
    if image.format != "MPO" and getattr(image, "is_animated", False):
        raise PhotoRejected(ANIMATED)
    if image.format in ("JPEG", "MPO"):
        _draft_jpeg(image, encoded_size, capacity_bytes)
    return ALLOWED_FORMATS[image.format]


def _draft_jpeg(image: Image.Image, encoded_size: int, capacity_bytes: int) -> None:
    """Decode at the first scale within JPEG_FULL_SCALE_MAX_PIXELS whose cost fits the budget.

    The cost matters for a progressive JPEG: its full-size coefficients cost the same at any
    scale, so one just under the pixel limit may only fit the budget at a smaller scale.
    """
    scale = next((s for s in JPEG_SCALES
                  if (pixels := _scaled_pixels(image, s)) <= JPEG_FULL_SCALE_MAX_PIXELS
                  and _cost(image, pixels, encoded_size) <= capacity_bytes), JPEG_SCALES[-1])
    if scale > 1:
        # draft() picks the largest scale whose result is at least the requested size (libjpeg
        # then rounds the scaled size up).
        image.draft(image.mode, (max(1, image.width // scale), max(1, image.height // scale)))


def _scaled_pixels(image: Image.Image, scale: int) -> int:
    # libjpeg rounds a scaled side up.
    return -(-image.width // scale) * -(-image.height // scale)


def decode_cost(image: Image.Image, encoded_size: int) -> int:
    """Estimated peak bytes to decode, turn and re-encode an opened (not yet decoded) photo of
    `encoded_size` bytes, from its header alone.

    Two pixel buffers at the size it will be decoded to (the decoded image and its upright or
    converted copy), what the codecs keep beside them (see the constants above), and the new
    encoding, about as large as the upload, held twice while it is read out.
    """
    return _cost(image, image.width * image.height, encoded_size)


def _cost(image: Image.Image, pixels: int, encoded_size: int) -> int:
    """decode_cost() were the photo decoded to `pixels` pixels."""
    cost = 2 * pixels * bytes_per_pixel(image.mode) + 2 * encoded_size
    if image.format == "WEBP":
        cost += pixels * WEBP_CODEC_BYTES_PER_PIXEL
    if image.format in ("JPEG", "MPO") and image.info.get("progressive"):
        # At full size, whatever the scale it is decoded at.
        width, height = _full_jpeg_size(image)
        components = len(getattr(image, "layer", ())) or len(image.getbands())
        cost += width * height * components * PROGRESSIVE_JPEG_BYTES_PER_COMPONENT
    return cost


def _full_jpeg_size(image: Image.Image) -> tuple[int, int]:
    """The size in the JPEG's header: draft() keeps its scale in decoderconfig (an upper bound:
    the scaled size was rounded up)."""
    scale = image.decoderconfig[0] if image.decoderconfig else 1
    return image.width * scale, image.height * scale


def bytes_per_pixel(mode: str) -> int:
    if mode in ONE_BYTE_MODES:
        return 1
    if mode in TWO_BYTE_MODES:
        return 2
    return 4


def _reencode(image: Image.Image, extension: str) -> ValidatedPhoto:
    icc_profile = image.info.get("icc_profile")
    transparency = image.info.get("transparency")
    jpeg_tables = _jpeg_tables(image)
    image.load()  # the primary picture only, for an MPO
    ImageOps.exif_transpose(image, in_place=True)
    if image.mode == "CMYK":
        # Browsers disagree on CMYK JPEGs; the site serves RGB. The CMYK profile no longer fits.
        image = image.convert("RGB")
        icc_profile, jpeg_tables = None, {}
    # Nothing from the source's info reaches the encoder (some fall back to it: comments,
    # PNG text): only what is passed below.
    image.info = {}
    options: dict = {"icc_profile": icc_profile} if icc_profile else {}
    if extension == "jpg":
        options |= jpeg_tables or {"quality": JPEG_QUALITY_WITHOUT_TABLES}
    elif extension == "png":
        if image.mode not in PNG_MODES:
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        if transparency is not None and "A" not in image.getbands():
            options["transparency"] = transparency
    else:
        options |= {"quality": WEBP_QUALITY, "method": WEBP_METHOD}
    output = io.BytesIO()
    image.save(output, SAVE_FORMATS[extension], **options)
    return ValidatedPhoto(output.getvalue(), extension, image.width, image.height)


def _jpeg_tables(image: Image.Image) -> dict:
    """The source's quantisation tables and subsampling, to re-encode at its own quality."""
    if image.format not in ("JPEG", "MPO") or not getattr(image, "quantization", None):
        return {}
    tables: dict = {"qtables": image.quantization}
    subsampling = JpegImagePlugin.get_sampling(image)
    if subsampling != -1:
        tables["subsampling"] = subsampling
    return tables
