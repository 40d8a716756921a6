"""Reviews and photos: round trips through the site, bad uploads, bounds, nothing half-saved."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from PIL import Image
from sqlalchemy.exc import IntegrityError

from webapp.db import get_session
from webapp.models import Review


def photo_urls(html: str) -> list[str]:
    return re.findall(r'<img class="review__photo" src="([^"]+)"', html)


def review_count(run_sql) -> int:
    return run_sql("SELECT count(*) FROM reviews")[0][0]


def blob_names(container) -> list[str]:
    if not container.exists():
        return []
    return [blob.name for blob in container.list_blobs()]


@pytest.mark.parametrize(
    ("image_format", "filename", "content_type"),
    [("JPEG", "dinner.jpg", "image/jpeg"), ("PNG", "dinner.png", "image/png"),
     ("WEBP", "dinner.webp", "image/webp")],
)
def test_photo_round_trips_through_the_site_with_caching_headers(
    client, add_restaurant, add_review, make_image, container,
    image_format, filename, content_type,
):
    restaurant_id = add_restaurant()
    photo = make_image(image_format)

    response = add_review(restaurant_id, photo=(photo, filename))
    assert response.status_code == 303

    [url] = photo_urls(client.get(f"/restaurants/{restaurant_id}").text)
    served = client.get(url)
    assert served.status_code == 200
    # Stored as a fresh encoding of the same picture (webapp/images.py), named by its bytes.
    with Image.open(io.BytesIO(served.data)) as stored, Image.open(io.BytesIO(photo)) as sent:
        assert (stored.format, stored.size) == (sent.format, sent.size)
    assert served.headers["Content-Type"] == content_type
    digest = hashlib.sha256(served.data).hexdigest()
    assert served.headers["ETag"] == f'"{digest}"'
    cache_control = served.headers["Cache-Control"]
    assert "immutable" in cache_control
    assert "max-age=31536000" in cache_control
    assert served.headers["X-Content-Type-Options"] == "nosniff"

    revalidated = client.get(url, headers={"If-None-Match": served.headers["ETag"]})
    assert revalidated.status_code == 304
    assert revalidated.data == b""
    assert revalidated.headers["ETag"] == served.headers["ETag"]

    # Stored in the container under its content-addressed name, with the real type.
    [name] = blob_names(container)
    assert url == f"/photos/{name}"
    assert container.get_blob_client(name).get_blob_properties().content_settings.content_type == (
        content_type
    )


def test_photo_names_are_checked_before_storage_is_asked(client):
    assert client.get("/photos/../../etc/passwd").status_code == 404
    assert client.get("/photos/not-a-hash.jpg").status_code == 404
    assert client.get("/photos/" + "0" * 64 + ".gif").status_code == 404


def test_unknown_photo_is_a_404(client):
    assert client.get("/photos/" + "a" * 64 + ".png").status_code == 404


def test_review_without_photo_is_saved_and_shown_newest_first(
    client, add_restaurant, add_review, container
):
    restaurant_id = add_restaurant()
    add_review(restaurant_id, reviewer_name="First", review_text="Earlier visit")
    add_review(restaurant_id, reviewer_name="Second", review_text="Later visit")

    html = client.get(f"/restaurants/{restaurant_id}").text
    assert html.index("Second") < html.index("First")
    assert "Later visit" in html
    assert photo_urls(html) == []
    assert blob_names(container) == []


@pytest.mark.parametrize(
    ("content", "filename", "message"),
    [
        (b"this is just text, not a picture", "dinner.jpg", "must be a JPEG, PNG or WebP image"),
        (b"", "empty.png", "The photo file is empty."),
    ],
)
def test_non_images_are_rejected_with_400_and_nothing_saved(
    client, add_restaurant, add_review, run_sql, container, content, filename, message
):
    restaurant_id = add_restaurant()
    response = add_review(restaurant_id, photo=(content, filename))
    assert response.status_code == 400
    assert message in response.text
    assert review_count(run_sql) == 0
    assert blob_names(container) == []


def test_no_file_chosen_saves_the_review_without_photo(
    client, add_restaurant, add_review, run_sql, container
):
    restaurant_id = add_restaurant()
    # What a browser sends for an untouched file input: an empty part with an empty file name.
    response = add_review(restaurant_id, photo=(b"", ""))
    assert response.status_code == 303
    assert run_sql("SELECT photo_name FROM reviews") == [(None,)]
    assert blob_names(container) == []


def test_unsupported_gif_is_rejected_next_to_the_photo_field(
    client, add_restaurant, add_review, make_image, run_sql, container
):
    restaurant_id = add_restaurant()
    response = add_review(restaurant_id, photo=(make_image("GIF"), "party.gif"))

    assert response.status_code == 400
    html = response.text
    assert re.search(r'id="photo-error">The photo must be a JPEG, PNG or WebP image', html)
    assert re.search(r'<input [^>]*aria-describedby="photo-hint photo-error"[^>]*id="photo"', html)
    # What the visitor typed is kept so they only need to pick another photo.
    assert 'value="Ada"' in html
    assert review_count(run_sql) == 0
    assert blob_names(container) == []


def test_truncated_image_is_rejected(client, add_restaurant, add_review, make_image, run_sql):
    restaurant_id = add_restaurant()
    jpeg = make_image("JPEG", size=(64, 64))
    response = add_review(restaurant_id, photo=(jpeg[: len(jpeg) // 2], "half.jpg"))
    assert response.status_code == 400
    assert "damaged or incomplete" in response.text
    assert review_count(run_sql) == 0


def test_image_with_too_many_pixels_is_rejected_before_decoding(
    add_restaurant, add_review, run_sql
):
    # 56 million black pixels compress to a few KiB but would take 170 MB to decode as RGB.
    buffer = io.BytesIO()
    Image.new("1", (7_500, 7_500)).save(buffer, "PNG")
    restaurant_id = add_restaurant()

    response = add_review(restaurant_id, photo=(buffer.getvalue(), "bomb.png"))

    assert response.status_code == 400
    assert "The photo has too many pixels." in response.text
    assert review_count(run_sql) == 0


def test_photo_over_the_limit_is_a_413_next_to_the_field(
    config, request, make_image, run_sql, container
):
    png = make_image("PNG", size=(64, 64))
    # Below MAX_CONTENT_LENGTH, so the request is read and the photo check itself refuses it.
    config["MAX_PHOTO_BYTES"] = len(png) - 1
    client, add_restaurant, add_review = map(
        request.getfixturevalue, ("client", "add_restaurant", "add_review"))
    restaurant_id = add_restaurant()

    response = add_review(restaurant_id, photo=(png, "big.png"))

    assert response.status_code == 413
    assert 'id="photo-error">The photo is larger than' in response.text
    assert review_count(run_sql) == 0
    assert blob_names(container) == []
    assert client.get("/").status_code == 200


def test_request_bigger_than_max_content_length_is_a_413_page_not_a_500(
    app, client, add_restaurant, add_review, run_sql, container
):
    restaurant_id = add_restaurant()
    too_big = b"\xff\xd8" + b"0" * app.config["MAX_CONTENT_LENGTH"]

    response = add_review(restaurant_id, photo=(too_big, "huge.jpg"))

    assert response.status_code == 413
    assert 'id="photo-error">The photo is larger than 8 MiB.' in response.text
    assert "Your review was not saved." in response.text
    assert review_count(run_sql) == 0
    assert blob_names(container) == []


@pytest.mark.parametrize("rating", ["0", "6", "-1", "", "five"])
def test_rating_outside_one_to_five_is_rejected_by_the_form(
    client, add_restaurant, add_review, run_sql, rating
):
    restaurant_id = add_restaurant()
    response = add_review(restaurant_id, rating=rating)
    assert response.status_code == 400
    # One message, the site's own, whatever the value (not WTForms' "could not coerce").
    assert 'id="rating-error">Choose a rating from 1 to 5.</p>' in response.text
    assert review_count(run_sql) == 0


def test_rating_bounds_are_also_a_database_constraint(app, add_restaurant):
    restaurant_id = add_restaurant()
    with app.app_context():
        session = get_session()
        session.add(
            Review(restaurant_id=restaurant_id, reviewer_name="X", rating=6, review_text="too good")
        )
        with pytest.raises(IntegrityError, match="ck_reviews_rating_range"):
            session.commit()


def test_missing_review_fields_are_reported(client, add_restaurant, add_review, run_sql):
    restaurant_id = add_restaurant()
    response = add_review(restaurant_id, reviewer_name=" ", review_text="")
    assert response.status_code == 400
    assert 'id="reviewer_name-error">Enter your name.' in response.text
    assert 'id="review_text-error">Write a few words about your visit.' in response.text
    assert review_count(run_sql) == 0


def test_review_for_unknown_restaurant_is_404_and_uploads_nothing(
    add_review, make_image, container
):
    response = add_review(424242, photo=(make_image("PNG"), "a.png"))
    assert response.status_code == 404
    assert blob_names(container) == []


def test_failed_database_write_deletes_the_uploaded_blob(
    app, add_restaurant, add_review, make_image, run_sql, container
):
    restaurant_id = add_restaurant()
    # A real failure inside PostgreSQL, after the photo is already in storage.
    run_sql(
        "CREATE FUNCTION refuse_review() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'reviews are closed'; END $$"
    )
    run_sql(
        "CREATE TRIGGER refuse_review BEFORE INSERT ON reviews "
        "FOR EACH ROW EXECUTE FUNCTION refuse_review()"
    )
    app.testing = False  # let the error reach the error page, as in production

    response = add_review(restaurant_id, photo=(make_image("JPEG"), "a.jpg"))

    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert review_count(run_sql) == 0
    assert container.exists(), "the upload happened before the insert"
    assert blob_names(container) == []


def test_failed_write_keeps_a_blob_that_another_review_already_uses(
    app, client, add_restaurant, add_review, make_image, run_sql, container
):
    restaurant_id = add_restaurant()
    photo = make_image("PNG")
    assert add_review(restaurant_id, photo=(photo, "a.png")).status_code == 303
    run_sql(
        "CREATE FUNCTION refuse_review() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'reviews are closed'; END $$"
    )
    run_sql("CREATE TRIGGER refuse_review BEFORE INSERT ON reviews "
            "FOR EACH ROW EXECUTE FUNCTION refuse_review()")
    app.testing = False

    assert add_review(restaurant_id, photo=(photo, "same.png")).status_code == 500

    [url] = photo_urls(client.get(f"/restaurants/{restaurant_id}").text)
    assert client.get(url).data == photo


def test_blob_is_kept_when_a_review_saved_meanwhile_uses_it(
    app, client, add_restaurant, add_review, make_image, run_sql, container
):
    """Review A uploads a new blob; review B (same bytes, so it found the blob already there)
    is saved before A's insert fails. A must not delete the blob B now shows."""
    restaurant_id = add_restaurant()
    photo = make_image("PNG")
    store = app.extensions["photo_store"]
    upload = store.upload

    def upload_then_another_review_is_saved(data, extension):
        stored = upload(data, extension)
        assert stored.created
        run_sql(
            "INSERT INTO reviews (restaurant_id, reviewer_name, rating, review_text, photo_name) "
            "VALUES (%s, 'B', 5, 'Same photo', %s)",
            (restaurant_id, stored.name),
        )
        return stored

    store.upload = upload_then_another_review_is_saved
    run_sql(
        "CREATE FUNCTION refuse_a() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.reviewer_name = 'A' THEN RAISE EXCEPTION 'A fails'; END IF; "
        "RETURN NEW; END $$"
    )
    run_sql("CREATE TRIGGER refuse_a BEFORE INSERT ON reviews "
            "FOR EACH ROW EXECUTE FUNCTION refuse_a()")
    app.testing = False

    assert add_review(restaurant_id, reviewer_name="A", photo=(photo, "a.png")).status_code == 500

    assert run_sql("SELECT reviewer_name FROM reviews") == [("B",)]
    [url] = photo_urls(client.get(f"/restaurants/{restaurant_id}").text)
    assert client.get(url).data == photo


def too_big_body(app) -> bytes:
    return b"\xff\xd8" + b"0" * app.config["MAX_CONTENT_LENGTH"]


def test_too_large_upload_to_an_unknown_restaurant_is_a_plain_413(app, add_review):
    # The form is read (and refused) before the view could answer 404.
    response = add_review(424242, photo=(too_big_body(app), "huge.jpg"))

    assert response.status_code == 413
    assert "Upload too large" in response.text
    assert "The photo is larger than 8 MiB." in response.text


def test_too_large_upload_while_the_database_is_down_is_a_503(database_down, app, add_review):
    response = add_review(1, photo=(too_big_body(app), "huge.jpg"))

    assert response.status_code == 503
    assert "The restaurant database is unavailable right now" in response.text
    assert response.headers["Retry-After"] == "30"


def test_if_none_match_star_is_not_a_304_for_a_missing_photo(
    client, add_restaurant, add_review, make_image
):
    missing = client.get("/photos/" + "a" * 64 + ".png", headers={"If-None-Match": "*"})
    assert missing.status_code == 404

    photo = make_image("PNG")
    add_review(add_restaurant(), photo=(photo, "a.png"))
    url = f"/photos/{hashlib.sha256(photo).hexdigest()}.png"
    starred = client.get(url, headers={"If-None-Match": "*"})
    assert starred.status_code == 200
    assert starred.data == photo
    # A weak form of the ETag still matches (weak comparison, as for any GET).
    weak = client.get(url, headers={"If-None-Match": f'W/"{hashlib.sha256(photo).hexdigest()}"'})
    assert weak.status_code == 304


def test_a_portrait_photo_is_sized_and_links_to_the_full_photo(
    client, add_restaurant, add_review, make_image, run_sql
):
    restaurant_id = add_restaurant()
    add_review(restaurant_id, photo=(make_image("JPEG", size=(30, 80)), "tall.jpg"))

    page = client.get(f"/restaurants/{restaurant_id}").text
    [url] = photo_urls(page)
    assert f'<a class="review__photo-link" href="{url}">' in page
    assert 'width="30" height="80"' in page
    assert run_sql("SELECT photo_width, photo_height FROM reviews") == [(30, 80)]
