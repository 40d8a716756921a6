"""Hostile photo uploads: a corpus of files made here (nothing downloaded) through the real site,
and property-based variations of it against webapp/images.py.

Every case holds to the same rules: never a 5xx (except the decode budget's retryable 503); a
refusal is a 4xx whose message names the problem, saves no review and leaves no blob; an
accepted photo is stored as the same picture, upright, and served without EXIF, XMP or comments.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image, ImageChops, ImageCms, ImageStat

from devtools.bench import decompression_bomb_png
from webapp import images
from webapp.images import DecodeBudget, PhotoRejected, validate_photo

MAX_BYTES = 8 * 1024 * 1024
UPRIGHT_SIZE = (48, 32)
# Mean difference per channel (0-255) allowed between a lossy photo and its ideal picture; a
# turned or mirrored picture differs by about 100.
LOSSY_TOLERANCE = 24
# What exif_transpose does for each EXIF orientation, and so how a camera stored an upright
# picture: each of these transposes is its own inverse except the two quarter turns.
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
HOME = (48.0, 51.0, 24.0)  # the latitude a leaked photo would give away
# Containers of metadata in JPEG (APP1 "Exif", XMP), PNG (eXIf and text chunks) and WebP.
METADATA_MARKERS = (b"Exif\x00\x00", b"http://ns.adobe.com/xap", b"eXIf", b"tEXt", b"iTXt",
                    b"zTXt", b"EXIF", b"XMP ")
JPEG_COMMENT_MARKER = b"\xff\xfe"


# --- the corpus --------------------------------------------------------------------------------


def picture(size: tuple[int, int] = UPRIGHT_SIZE, mode: str = "RGB") -> Image.Image:
    """Four coloured quarters: any turn or flip of it shows."""
    width, height = size
    image = Image.new("RGB", size, "white")
    image.paste((220, 30, 30), (0, 0, width // 2, height // 2))
    image.paste((30, 30, 220), (width // 2, 0, width, height // 2))
    image.paste((30, 200, 30), (0, height // 2, width // 2, height))
    return image.convert(mode)


def gps_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "PocketCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = HOME
    return exif


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def as_taken(upright: Image.Image, orientation: int, image_format: str, **options) -> bytes:
    """The upright picture stored sideways (or mirrored), as a camera does, GPS included."""
    stored = upright.transpose(STORED_AS[orientation]) if orientation in STORED_AS else upright
    data = encode(stored, image_format, exif=gps_exif(orientation), **options)
    with Image.open(io.BytesIO(data)) as check:
        check.load()
        assert check.getexif().get_ifd(ExifTags.IFD.GPSInfo), "the source must carry GPS"
    return data


def frames(image_format: str) -> bytes:
    """An animation (or, for MPO, a primary picture and a second one) of two frames."""
    second = Image.new("RGB", UPRIGHT_SIZE, "yellow")
    return encode(picture(), image_format, save_all=True, append_images=[second])


def with_metadata_jpeg() -> bytes:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(picture(), "JPEG", exif=gps_exif(), comment=b"shot at 12 Home Lane",
                  xmp=b"<x:xmpmeta>GPS 48.85</x:xmpmeta>", icc_profile=srgb, quality=95)
    return data + b"PK\x03\x04 hidden archive after the picture"


def header_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims another size."""
    data = bytearray(encode(picture(), "JPEG"))
    frame = data.index(b"\xff\xc0")
    data[frame + 5:frame + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims another size (its CRC fixed to match)."""
    data = bytearray(decompression_bomb_png(8, 8))
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def palette_with_transparency() -> Image.Image:
    image = picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    image.info["transparency"] = image.getpixel((0, 0))
    return image


def sixteen_bit_grey() -> Image.Image:
    image = Image.new("I;16", UPRIGHT_SIZE, 1000)
    image.paste(60000, (0, 0, UPRIGHT_SIZE[0] // 2, UPRIGHT_SIZE[1] // 2))
    image.info["transparency"] = 1000  # a tRNS chunk: this grey is see-through
    return image


def truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


@dataclass(frozen=True)
class Case:
    """One upload: its bytes (built on demand), the name and type the browser claims, and
    either the picture that must be stored (with its extension) or the refusal's message."""

    build: Callable[[], bytes]
    filename: str
    content_type: str = "image/jpeg"
    stored: Callable[[], Image.Image] | None = None
    extension: str | None = None
    lossless: bool = False
    refusal: str | None = None
    keeps_colour_profile: bool = False


ACCEPTED = {
    "jpeg-rotated-with-gps": Case(lambda: as_taken(picture(), 6, "JPEG", quality=95),
                                  "IMG_0001.jpg", stored=picture, extension="jpg"),
    "jpeg-mirrored-with-gps": Case(lambda: as_taken(picture(), 2, "JPEG", quality=95),
                                   "mirror.jpg", stored=picture, extension="jpg"),
    "progressive-jpeg-rotated": Case(
        lambda: as_taken(picture(), 8, "JPEG", quality=95, progressive=True),
        "progressive.jpg", stored=picture, extension="jpg"),
    "png-upside-down-with-gps": Case(lambda: as_taken(picture(), 3, "PNG"), "screen.png",
                                     "image/png", stored=picture, extension="png", lossless=True),
    "webp-rotated-with-gps": Case(lambda: as_taken(picture(), 6, "WEBP", quality=95),
                                  "phone.webp", "image/webp", stored=picture, extension="webp"),
    "mpo-multi-picture": Case(lambda: frames("MPO"), "DSC_0001.JPG", stored=picture,
                              extension="jpg"),
    "mpo-rotated-with-gps": Case(
        lambda: encode(picture().transpose(STORED_AS[6]), "MPO", save_all=True,
                       append_images=[Image.new("RGB", (32, 48), "yellow")], exif=gps_exif(6)),
        "portrait.jpg", stored=picture, extension="jpg"),
    "cmyk-jpeg": Case(lambda: encode(picture(mode="CMYK"), "JPEG", quality=95), "print.jpg",
                      stored=lambda: picture(mode="CMYK").convert("RGB"), extension="jpg"),
    "greyscale-jpeg": Case(lambda: encode(picture(mode="L"), "JPEG", quality=95), "grey.jpg",
                           stored=lambda: picture(mode="L"), extension="jpg"),
    "16-bit-png": Case(lambda: encode(sixteen_bit_grey(), "PNG"), "scan.png", "image/png",
                       stored=sixteen_bit_grey, extension="png", lossless=True),
    "palette-png-with-transparency": Case(
        lambda: encode(palette_with_transparency(), "PNG"), "logo.png", "image/png",
        stored=palette_with_transparency, extension="png", lossless=True),
    "greyscale-alpha-png": Case(lambda: encode(picture(mode="LA"), "PNG"), "la.png", "image/png",
                                stored=lambda: picture(mode="LA"), extension="png",
                                lossless=True),
    "jpeg-with-comment-xmp-icc-and-trailing-zip": Case(with_metadata_jpeg, "meta.jpg",
                                                       stored=picture, extension="jpg",
                                                       keeps_colour_profile=True),
    "png-named-jpg-sent-as-gif": Case(lambda: encode(picture(), "PNG"), "holiday.jpg",
                                      "image/gif", stored=picture, extension="png",
                                      lossless=True),
    "jpeg-named-png-without-type": Case(lambda: encode(picture(), "JPEG", quality=95), "x.png",
                                        "application/octet-stream", stored=picture,
                                        extension="jpg"),
}
REFUSED = {
    "animated-gif": Case(lambda: frames("GIF"), "party.gif", "image/gif",
                         refusal="must be a JPEG, PNG or WebP image"),
    "animated-png": Case(lambda: frames("PNG"), "moving.png", "image/png",
                         refusal="The photo is animated."),
    "animated-webp": Case(lambda: frames("WEBP"), "moving.webp", "image/webp",
                          refusal="The photo is animated."),
    "truncated-jpeg": Case(lambda: truncated(as_taken(picture((256, 256)), 1, "JPEG")),
                           "half.jpg", refusal="damaged or incomplete"),
    "truncated-png": Case(lambda: truncated(encode(picture((256, 256)), "PNG")), "half.png",
                          "image/png", refusal="damaged or incomplete"),
    "truncated-webp": Case(lambda: truncated(encode(picture((256, 256)), "WEBP")), "half.webp",
                           "image/webp", refusal="damaged or incomplete"),
    "png-header-claiming-60000-squared": Case(lambda: png_claiming(60_000, 60_000),
                                          "bomb.png", "image/png", refusal="too many pixels"),
    "jpeg-header-claiming-65000-squared": Case(lambda: header_claiming(65_000, 65_000),
                                               "bomb.jpg", refusal="too many pixels"),
    "png-bomb-beyond-the-memory-budget": Case(lambda: decompression_bomb_png(6_000, 6_000),
                                              "rgba.png", "image/png",
                                              refusal="too many pixels"),
    "text-named-jpg": Case(lambda: b"just some text, not a picture\n", "photo.jpg",
                           refusal="must be a JPEG, PNG or WebP image"),
    "html-named-png": Case(lambda: b"<html><script>alert(1)</script></html>", "x.png",
                           "image/png", refusal="must be a JPEG, PNG or WebP image"),
    "svg": Case(lambda: b'<svg xmlns="http://www.w3.org/2000/svg"/>', "x.svg",
                "image/svg+xml", refusal="must be a JPEG, PNG or WebP image"),
    "bmp": Case(lambda: encode(picture(), "BMP"), "x.bmp", "image/bmp",
                refusal="must be a JPEG, PNG or WebP image"),
    "png-signature-only": Case(lambda: b"\x89PNG\r\n\x1a\n", "empty.png", "image/png",
                               refusal="must be a JPEG, PNG or WebP image"),
}


# --- checks ------------------------------------------------------------------------------------


def assert_same_picture(data: bytes, expected: Image.Image, lossless: bool) -> None:
    with Image.open(io.BytesIO(data)) as stored:
        assert stored.size == expected.size  # upright: a turned photo swaps its sides
        assert stored.mode == expected.mode  # a CMYK JPEG is served as RGB
        if lossless:
            assert stored.tobytes() == expected.tobytes()
            assert stored.info.get("transparency") == expected.info.get("transparency")
        else:
            difference = ImageChops.difference(stored.convert("RGB"), expected.convert("RGB"))
            assert max(ImageStat.Stat(difference).mean) <= LOSSY_TOLERANCE


def assert_no_metadata(data: bytes) -> None:
    for marker in METADATA_MARKERS:
        assert marker not in data, marker
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.format == "JPEG":
            assert JPEG_COMMENT_MARKER not in data
        assert not image.getexif()
        assert not {"exif", "xmp", "comment", "XML:com.adobe.xmp"} & set(image.info)


def photo_error(html: str) -> str:
    match = re.search(r'id="photo-error">([^<]*)<', html)
    assert match, "the refusal is shown next to the photo field"
    return match.group(1)


# --- through the site --------------------------------------------------------------------------


@pytest.fixture
def post_photo(client, add_restaurant, store):
    """post_photo(data, filename, content_type) -> (restaurant id, response)."""
    store.check()  # the container exists, so an empty listing means "nothing stored"
    restaurant_id = add_restaurant()

    def post(data: bytes, filename: str, content_type: str):
        form = {"reviewer_name": "Ada", "rating": "4", "review_text": "Lovely soup.",
                "photo": (io.BytesIO(data), filename, content_type)}
        return restaurant_id, client.post(f"/restaurants/{restaurant_id}/reviews", data=form,
                                          content_type="multipart/form-data")

    return post


@pytest.mark.parametrize("case", list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_accepted_photo_is_stored_upright_and_served_without_metadata(
    case, post_photo, client, run_sql, blob_names,
):
    restaurant_id, response = post_photo(case.build(), case.filename, case.content_type)

    assert response.status_code == 303, response.text
    [name] = blob_names()
    assert run_sql("SELECT photo_name FROM reviews") == [(name,)]
    assert f'src="/photos/{name}"' in client.get(f"/restaurants/{restaurant_id}").text
    served = client.get(f"/photos/{name}")
    assert served.status_code == 200
    assert name == f"{hashlib.sha256(served.data).hexdigest()}.{case.extension}"
    assert served.mimetype == {"jpg": "image/jpeg", "png": "image/png",
                               "webp": "image/webp"}[case.extension]
    assert_same_picture(served.data, case.stored(), case.lossless)
    assert_no_metadata(served.data)
    with Image.open(io.BytesIO(served.data)) as image:
        assert ("icc_profile" in image.info) is case.keeps_colour_profile


@pytest.mark.parametrize("case", list(REFUSED.values()), ids=list(REFUSED))
def test_refused_photo_is_a_4xx_naming_the_problem_with_nothing_saved(
    case, post_photo, run_sql, blob_names,
):
    _restaurant_id, response = post_photo(case.build(), case.filename, case.content_type)

    assert response.status_code == 400
    assert case.refusal in photo_error(response.text)
    assert run_sql("SELECT count(*) FROM reviews") == [(0,)]
    assert blob_names() == set()


def test_a_full_decode_budget_is_a_retryable_503_that_saves_nothing(config, request):
    config.update(PHOTO_DECODE_MEMORY_MIB="1", PHOTO_DECODE_WAIT_SECONDS="0")
    app = request.getfixturevalue("app")
    post_photo = request.getfixturevalue("post_photo")
    run_sql = request.getfixturevalue("run_sql")
    blob_names = request.getfixturevalue("blob_names")
    budget = app.extensions["decode_budget"]
    assert budget.capacity_bytes == 1024 * 1024  # from the site's settings
    photo = encode(picture(), "PNG")

    with budget.reserve(budget.capacity_bytes):  # other uploads are being decoded
        _restaurant_id, busy = post_photo(photo, "a.png", "image/png")

    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == str(images.BUSY_RETRY_AFTER_SECONDS)
    assert photo_error(busy.text) == images.BUSY
    assert "Lovely soup." in busy.text  # the visitor only has to send the form again
    assert run_sql("SELECT count(*) FROM reviews") == [(0,)]
    assert blob_names() == set()
    _restaurant_id, retried = post_photo(photo, "a.png", "image/png")
    assert retried.status_code == 303


# --- the decode budget and the cost model ------------------------------------------------------


def test_a_waiting_photo_gets_its_turn_when_the_budget_frees_up():
    budget = DecodeBudget(100, wait_seconds=30)
    waiting_started, finished = threading.Event(), threading.Event()

    def second_upload() -> None:
        waiting_started.set()
        with budget.reserve(60):
            finished.set()

    with budget.reserve(60):
        thread = threading.Thread(target=second_upload)
        thread.start()
        assert waiting_started.wait(10)
        assert not finished.is_set() and budget.in_use_bytes == 60
    thread.join(10)
    assert finished.is_set() and budget.in_use_bytes == 0


def test_a_photo_that_finds_no_room_in_time_is_told_to_retry():
    budget = DecodeBudget(10_000, wait_seconds=0)
    with budget.reserve(9_900):  # a small photo costs a few hundred bytes
        with pytest.raises(PhotoRejected) as rejection:
            validate_photo(encode(picture((4, 2)), "PNG"), MAX_BYTES, budget)
        assert budget.in_use_bytes == 9_900  # the refused photo held nothing
    assert (rejection.value.status, rejection.value.retry_after) == (
        503, images.BUSY_RETRY_AFTER_SECONDS)


# After a 16 MB block was freed glibc would keep blocks up to that size in a thread's heap; is a
# 6 MB buffer (a photo's pixel block) still given a mapping of its own, unmapped when freed?
# glibc marks such a chunk with bit 2 of the size word just before it.
MAPPING_PROBE = """
import ctypes, sys
from flask import Flask
from webapp import images
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "site":
    images.init_app(Flask("probe"), 1, 0)
libc.free(libc.malloc(16 << 20))
pixels = libc.malloc(6 << 20)
print(bool(ctypes.c_size_t.from_address(pixels - ctypes.sizeof(ctypes.c_size_t)).value & 2))
"""


@pytest.mark.parametrize(("process", "mapped"), [("plain", "False"), ("site", "True")])
def test_freed_pixel_buffers_go_back_to_the_system_in_a_site_process(process, mapped):
    probe = subprocess.run([sys.executable, "-c", MAPPING_PROBE, process], capture_output=True,
                           text=True, timeout=60, check=True)
    assert probe.stdout.strip() == mapped


def test_running_out_of_memory_anyway_is_a_retryable_503_that_frees_its_reservation(
    monkeypatch,
):
    def out_of_memory(*_args):
        raise MemoryError

    monkeypatch.setattr(images, "_reencode", out_of_memory)
    budget = DecodeBudget(1024 * 1024, wait_seconds=0)
    with pytest.raises(PhotoRejected) as rejection:
        validate_photo(encode(picture(), "PNG"), MAX_BYTES, budget)
    assert (rejection.value.status, rejection.value.message) == (503, images.BUSY)
    assert budget.in_use_bytes == 0


@pytest.mark.parametrize(
    ("photo", "bytes_per_pixel"),
    [
        # Two pixel buffers of four bytes per pixel (Pillow keeps RGB in four).
        (encode(picture((100, 100)), "PNG"), 2 * 4),
        (encode(picture((100, 100), mode="L"), "PNG"), 2 * 1),
        (encode(picture((100, 100)), "JPEG"), 2 * 4),
        # Plus the progressive JPEG's coefficients: two bytes per pixel per component.
        (encode(picture((100, 100)), "JPEG", progressive=True), 2 * 4 + 2 * 3),
        # Plus what libwebp's decoder and encoder keep.
        (encode(picture((100, 100)), "WEBP"), 2 * 4 + 16),
    ],
    ids=["png-rgb", "png-grey", "jpeg", "progressive-jpeg", "webp"],
)
def test_a_photo_costs_its_estimate_and_is_refused_when_that_exceeds_the_budget(
    photo, bytes_per_pixel,
):
    # And the new encoding, about the size of the upload, held twice.
    cost = bytes_per_pixel * 100 * 100 + 2 * len(photo)
    assert validate_photo(photo, MAX_BYTES, DecodeBudget(cost, wait_seconds=0)).width == 100
    short = DecodeBudget(cost - 1, wait_seconds=0)
    if photo.startswith(b"\xff\xd8"):  # a JPEG is decoded at a smaller scale instead
        assert validate_photo(photo, MAX_BYTES, short).width == 50
    else:
        with pytest.raises(PhotoRejected, match="too many pixels"):
            validate_photo(photo, MAX_BYTES, short)


def test_a_large_jpeg_is_decoded_and_stored_at_a_reduced_scale(monkeypatch):
    monkeypatch.setattr(images, "JPEG_FULL_SCALE_MAX_PIXELS", 1_000)
    photo = encode(picture((101, 81)), "JPEG", quality=95)
    # 1/4 scale is the first at or below the limit (libjpeg rounds 101/4 and 81/4 up); the
    # budget fits that size only.
    budget = DecodeBudget(2 * 4 * 26 * 21 + 2 * len(photo), wait_seconds=0)

    stored = validate_photo(photo, MAX_BYTES, budget)

    assert_same_picture(stored.data, picture((26, 21)), lossless=False)


def test_a_progressive_jpeg_too_costly_at_full_scale_is_decoded_smaller(monkeypatch):
    # Below the pixel limit for full scale, but its full-size decode does not fit the budget
    # while a half-size one does (a progressive JPEG's full-size coefficients cost the same at
    # any scale): it is stored smaller, as a larger photo would be, not refused.
    monkeypatch.setattr(images, "JPEG_FULL_SCALE_MAX_PIXELS", 1_000)
    photo = encode(picture((30, 30)), "JPEG", quality=95, progressive=True)
    coefficients = 30 * 30 * 3 * images.PROGRESSIVE_JPEG_BYTES_PER_COMPONENT
    budget = DecodeBudget(2 * 4 * 15 * 15 + 2 * len(photo) + coefficients, wait_seconds=0)

    stored = validate_photo(photo, MAX_BYTES, budget)

    assert (stored.width, stored.height) == (15, 15)


# --- properties --------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow])
PROPERTY_BUDGET = DecodeBudget(64 * 1024 * 1024, wait_seconds=0)
SEEDS = [
    as_taken(picture((16, 8)), 6, "JPEG"),
    as_taken(picture((16, 8)), 3, "JPEG", progressive=True),
    as_taken(picture((16, 8)), 5, "PNG"),
    as_taken(picture((16, 8)), 8, "WEBP"),
    encode(picture((16, 8)), "MPO", save_all=True, append_images=[picture((16, 8))]),
    encode(palette_with_transparency(), "PNG"),
]


@PROPERTY_SETTINGS
@given(upright_size=st.tuples(st.integers(16, 64), st.integers(16, 64)),
       orientation=st.integers(1, 8), image_format=st.sampled_from(["JPEG", "PNG", "WEBP"]))
def test_any_orientation_is_stored_upright_without_metadata(upright_size, orientation,
                                                            image_format):
    upright = picture(upright_size)
    options = {"quality": 95} if image_format != "PNG" else {}
    photo = as_taken(upright, orientation, image_format, **options)

    stored = validate_photo(photo, MAX_BYTES, PROPERTY_BUDGET)

    assert_same_picture(stored.data, upright, lossless=image_format == "PNG")
    assert_no_metadata(stored.data)


# Pillow warns about the corrupt EXIF and MPO data these are made of.
@pytest.mark.filterwarnings("ignore::UserWarning")
@PROPERTY_SETTINGS
@given(seed=st.sampled_from(SEEDS), keep=st.floats(0, 1),
       changes=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6))
def test_damaged_photos_are_refused_by_name_or_stored_clean(seed, keep, changes):
    data = bytearray(seed[: max(1, int(len(seed) * keep))])
    for position, value in changes:
        data[position % len(data)] = value

    try:
        stored = validate_photo(bytes(data), MAX_BYTES, PROPERTY_BUDGET)
    except PhotoRejected as rejection:
        assert rejection.status == 400
        assert rejection.message in (images.NOT_AN_IMAGE, images.DAMAGED, images.ANIMATED,
                                     images.TOO_MANY_PIXELS)
    else:
        assert_no_metadata(stored.data)  # which also decodes it
    assert PROPERTY_BUDGET.in_use_bytes == 0


@PROPERTY_SETTINGS
@given(data=st.binary(max_size=512))
def test_arbitrary_bytes_are_refused_by_name(data):
    with pytest.raises(PhotoRejected) as rejection:
        validate_photo(data, MAX_BYTES, PROPERTY_BUDGET)
    assert rejection.value.status == 400 and rejection.value.message
