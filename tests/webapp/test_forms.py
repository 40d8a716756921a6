"""Forms (webapp/forms.py): invisible text, each size limit named on its own form with what was
typed kept, and a form posted twice saving once."""

from __future__ import annotations

import io
import re
import threading

import pytest
from flask import request
from werkzeug.datastructures import MultiDict

from tests.site_pages import hidden_field
from webapp.forms import RestaurantForm, has_visible_character

INVISIBLE = [
    "\u200b",  # zero-width space
    "\u200d\u200d",  # zero-width joiners
    "\ufeff",  # byte order mark
    "\u202e\u2066\u2069",  # bidi controls
    "\u2060\u00ad",  # word joiner, soft hyphen
    " \u0301\u0308 ",  # combining marks on nothing
    "\u3164",  # Hangul filler
    "\u3000\u00a0",  # ideographic and no-break spaces
]
RESTAURANT = {"name": "Chez Test", "street_address": "1 Main Street", "description": ""}
REVIEW = {"reviewer_name": "Ada", "rating": "4", "review_text": "Lovely soup."}


def field_error(html: str, field: str) -> str | None:
    match = re.search(rf'id="{field}-error">([^<]*)</p>', html)
    return match and match.group(1)


def count(run_sql, table: str) -> int:
    return run_sql(f"SELECT count(*) FROM {table}")[0][0]


# Text that shows nothing counts as empty ---------------------------------------------------


@pytest.mark.parametrize("invisible", INVISIBLE)
@pytest.mark.parametrize("field", ["name", "street_address"])
def test_a_restaurant_field_with_nothing_visible_is_required(client, run_sql, invisible, field):
    response = client.post("/restaurants/new", data={**RESTAURANT, field: invisible})

    assert response.status_code == 400
    assert field_error(response.text, field).startswith("Enter the")
    assert count(run_sql, "restaurants") == 0


@pytest.mark.parametrize("field", ["reviewer_name", "review_text"])
def test_a_review_field_with_nothing_visible_is_required(
    add_restaurant, add_review, run_sql, field
):
    response = add_review(add_restaurant(), **{field: "\u200b\u200d\ufeff\u2067"})

    assert response.status_code == 400
    assert field_error(response.text, field)
    assert count(run_sql, "reviews") == 0


def test_visible_text_with_format_characters_is_kept_normalised(add_restaurant, run_sql):
    # An emoji family (zero-width joiners) and a decomposed é: kept, composed (NFC).
    add_restaurant("Cafe\u0301 \U0001f468\u200d\U0001f469\u200d\U0001f467")

    assert run_sql("SELECT name FROM restaurants") == [
        ("Caf\u00e9 \U0001f468\u200d\U0001f469\u200d\U0001f467",)
    ]


def test_visibility_is_decided_per_character():
    assert has_visible_character("\u200ba")
    assert not has_visible_character("\u200b\u2800\u115f")


def test_length_is_checked_after_normalisation(app):
    # U+0958 is excluded from composition: NFC turns it into two code points.
    with app.test_request_context():
        form = RestaurantForm(formdata=MultiDict({**RESTAURANT, "name": "\u0958" * 60}))
        assert not form.validate()
    assert "name" in form.errors


# Size limits: named, on the right form, with the text kept --------------------------------


@pytest.fixture
def small_limits(config: dict) -> dict:
    config.update(MAX_FORM_MEMORY_SIZE=4096, MAX_FORM_PARTS=8)
    return config


def test_a_text_field_over_the_form_memory_limit_is_named_next_to_it(
    small_limits, app, add_restaurant, add_review, run_sql
):
    response = add_review(add_restaurant(), review_text="x" * 5000)

    assert response.status_code == 413
    error = field_error(response.text, "review_text")
    assert "“Your review” is longer than 4.0 KiB" in error
    assert "photo" not in error
    # The fields sent before it come back as typed.
    assert 'value="Ada"' in response.text
    assert re.search(r'<input checked [^>]*value="4"', response.text)
    assert count(run_sql, "reviews") == 0


def test_too_many_parts_is_named_above_the_form(small_limits, app, add_restaurant, run_sql):
    restaurant_id = add_restaurant()
    client = app.test_client()
    data = MultiDict([*REVIEW.items(), *[("extra", "x")] * 10])

    response = client.post(f"/restaurants/{restaurant_id}/reviews", data=data,
                           content_type="multipart/form-data")

    assert response.status_code == 413
    assert "more than 8 parts" in response.text
    assert 'id="form-error"' in response.text
    assert "The photo is larger" not in response.text
    assert count(run_sql, "reviews") == 0


def test_an_oversized_restaurant_form_names_the_form_not_a_photo(
    small_limits, client, run_sql
):
    response = client.post("/restaurants/new", data={**RESTAURANT, "description": "x" * 5000})

    assert response.status_code == 413
    assert "Add a restaurant" in response.text
    assert "larger than 4.0 KiB, more than this form accepts" in response.text
    assert "The photo" not in response.text
    assert count(run_sql, "restaurants") == 0


def test_an_oversized_multipart_restaurant_field_is_named_and_the_rest_kept(
    small_limits, client, run_sql
):
    data = {"name": "Kept Bistro", "street_address": "2 Long Road", "description": "x" * 5000}

    response = client.post("/restaurants/new", data=data, content_type="multipart/form-data")

    assert response.status_code == 413
    assert "“Description (optional)” is longer than" in field_error(response.text,
                                                                     "description")
    assert 'value="Kept Bistro"' in response.text
    assert 'value="2 Long Road"' in response.text
    assert count(run_sql, "restaurants") == 0


def test_an_oversized_review_without_a_file_part_names_the_form_not_a_photo(
    small_limits, client, add_restaurant, run_sql
):
    # A body that is not multipart cannot carry a photo (any client may send one).
    response = client.post(f"/restaurants/{add_restaurant()}/reviews",
                           data={**REVIEW, "review_text": "x" * 5000})

    assert response.status_code == 413
    assert "larger than 4.0 KiB, more than this form accepts" in response.text
    assert 'id="form-error"' in response.text
    assert "photo is larger" not in response.text
    assert count(run_sql, "reviews") == 0


@pytest.fixture
def photo_limit_64k(config: dict) -> int:
    config["MAX_PHOTO_BYTES"] = 64 * 1024
    return config["MAX_PHOTO_BYTES"]


def test_a_too_large_photo_keeps_the_review_typed_with_it(
    photo_limit_64k, app, add_restaurant, add_review, make_image, run_sql, container
):
    # Several times the photo limit, as a phone photo is: the request is still read (the
    # photo only up to its limit), so the review typed with it comes back.
    photo = make_image("PNG", size=(40, 40), color="red")
    photo += b"\0" * (6 * photo_limit_64k - len(photo))

    response = add_review(add_restaurant(), photo=(photo, "phone.png"),
                          reviewer_name="Grace", review_text="Best dumplings in town.")

    assert response.status_code == 413
    assert "The photo is larger than 64 KiB" in field_error(response.text, "photo")
    assert 'value="Grace"' in response.text
    assert "Best dumplings in town.</textarea>" in response.text
    assert count(run_sql, "reviews") == 0
    assert not container.exists()  # nothing was ever uploaded


def test_an_upload_over_the_request_limit_is_refused_unread_on_the_review_form(
    app, add_restaurant, add_review, run_sql
):
    restaurant_id = add_restaurant()
    too_big = b"\xff\xd8" + b"0" * app.config["MAX_CONTENT_LENGTH"]

    response = add_review(restaurant_id, photo=(too_big, "huge.jpg"))

    assert response.status_code == 413
    assert "The photo is larger than 8 MiB" in field_error(response.text, "photo")
    assert count(run_sql, "reviews") == 0


@pytest.fixture
def photo_limit_10_bytes(config: dict) -> None:
    config["MAX_PHOTO_BYTES"] = 10


def test_files_keep_no_more_than_one_byte_past_the_photo_limit(photo_limit_10_bytes, app):
    body = {"photo": (io.BytesIO(b"a" * 1000), "a.jpg"), "other": (io.BytesIO(b"b" * 99), "b")}
    with app.test_request_context("/", method="POST", data=body,
                                  content_type="multipart/form-data"):
        kept = {name: len(upload.read()) for name, upload in request.files.items()}
    assert kept == {"photo": 11, "other": 0}


# A form posted twice saves once -----------------------------------------------------------


def test_the_same_restaurant_form_posted_twice_saves_once(client, run_sql):
    token = hidden_field(client.get("/restaurants/new").text, "submission_token")
    data = {**RESTAURANT, "submission_token": token}

    first = client.post("/restaurants/new", data=data)
    second = client.post("/restaurants/new", data=data)

    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert count(run_sql, "restaurants") == 1


def test_concurrent_posts_of_one_review_form_save_one_review(
    app, add_restaurant, make_image, run_sql, blob_names
):
    restaurant_id = add_restaurant()
    token = hidden_field(app.test_client().get(f"/restaurants/{restaurant_id}").text,
                         "submission_token")
    photo = make_image("PNG")
    start = threading.Barrier(4)
    answers: list[tuple[int, str]] = []

    def post() -> None:
        data = {**REVIEW, "submission_token": token, "photo": (io.BytesIO(photo), "a.png")}
        start.wait(timeout=10)
        response = app.test_client().post(f"/restaurants/{restaurant_id}/reviews", data=data,
                                          content_type="multipart/form-data")
        answers.append((response.status_code, response.headers.get("Location")))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert answers == [(303, f"/restaurants/{restaurant_id}")] * 4
    assert count(run_sql, "reviews") == 1
    assert len(blob_names()) == 1


def test_a_review_token_already_saved_elsewhere_answers_where_it_was_saved(
    client, add_restaurant, run_sql
):
    first, other = add_restaurant("First"), add_restaurant("Other")
    token = hidden_field(client.get(f"/restaurants/{first}").text, "submission_token")
    client.post(f"/restaurants/{first}/reviews", data={**REVIEW, "submission_token": token})

    # Only a crafted post can carry one restaurant's token to another: it is the first post
    # repeated, so it gets that post's answer, not thanks on a page without the review.
    repeated = client.post(f"/restaurants/{other}/reviews",
                           data={**REVIEW, "submission_token": token})

    assert repeated.status_code == 303
    assert repeated.headers["Location"] == f"/restaurants/{first}"
    assert run_sql("SELECT restaurant_id FROM reviews") == [(first,)]


def test_a_form_refused_once_keeps_its_token_and_saves_when_corrected(client, run_sql):
    token = hidden_field(client.get("/restaurants/new").text, "submission_token")

    refused = client.post("/restaurants/new", data={**RESTAURANT, "name": "",
                                                    "submission_token": token})
    assert hidden_field(refused.text, "submission_token") == token
    saved = client.post("/restaurants/new", data={**RESTAURANT, "submission_token": token})

    assert saved.status_code == 303
    assert count(run_sql, "restaurants") == 1


def test_every_rendered_form_gets_a_new_token(client, add_restaurant):
    page = f"/restaurants/{add_restaurant()}"
    tokens = {hidden_field(client.get(page).text, "submission_token") for _ in range(3)}
    assert len(tokens) == 3


def test_a_post_without_a_token_still_saves(client, run_sql):
    assert client.post("/restaurants/new", data=RESTAURANT).status_code == 303
    assert client.post("/restaurants/new", data={**RESTAURANT, "submission_token": "nope"}
                       ).status_code == 303
    assert count(run_sql, "restaurants") == 2


# After a validation error the page opens at the problem -----------------------------------


def test_the_first_invalid_field_gets_autofocus(add_restaurant, add_review):
    response = add_review(add_restaurant(), reviewer_name="", review_text="")

    autofocused = re.findall(r'<(?:input|textarea)[^>]*\bautofocus\b[^>]*>', response.text)
    assert len(autofocused) == 1
    assert 'id="reviewer_name"' in autofocused[0]


def test_a_blank_form_has_no_autofocus(client, add_restaurant):
    assert "autofocus" not in client.get(f"/restaurants/{add_restaurant()}").text
    assert "autofocus" not in client.get("/restaurants/new").text


def test_a_part_whose_name_cannot_be_read_is_ignored(client, run_sql):
    # The rest of the form is read and saved as if the part were not there.
    body = (b'--0\r\nContent-Disposition: form-data; name="\n"\r\n\r\nx\r\n'
            b'--0\r\nContent-Disposition: form-data; name="name"\r\n\r\nChez Test\r\n'
            b'--0\r\nContent-Disposition: form-data; name="street_address"\r\n\r\n1 A\r\n'
            b'--0--\r\n')

    response = client.post("/restaurants/new", data=body,
                           content_type="multipart/form-data; boundary=0")

    assert response.status_code == 303, response.text
    assert run_sql("SELECT name, street_address FROM restaurants") == [("Chez Test", "1 A")]


TEXT_FIELDS = [("/restaurants/new", name)
               for name in ("name", "street_address", "description", "submission_token")]
TEXT_FIELDS += [("/restaurants/{id}/reviews", name)
                for name in ("reviewer_name", "rating", "review_text", "submission_token")]


@pytest.mark.parametrize(("path", "field"), TEXT_FIELDS)
def test_a_file_sent_in_place_of_a_text_field_is_refused_not_a_server_error(
        client, add_restaurant, run_sql, path, field):
    # Any client can send one (no token is needed to post a form): it must not reach the
    # field's validators as a file.
    body = (f'--0\r\nContent-Disposition: form-data; name="{field}"; filename="a.txt"\r\n\r\n'
            "text\r\n--0--\r\n").encode()

    response = client.post(path.format(id=add_restaurant()), data=body,
                           content_type="multipart/form-data; boundary=0")

    assert response.status_code == 400, response.status_code
    assert count(run_sql, "reviews") == 0
    assert count(run_sql, "restaurants") == 1  # only the one added to review


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', '{"name": {"nested": 1}}',
                                  '{"name": "Json Diner", "street_address": "1 A"}'])
@pytest.mark.parametrize("path", ["/restaurants/new", "/restaurants/{id}/reviews"])
def test_a_json_body_is_no_form_and_saves_nothing(client, add_restaurant, run_sql, path, body):
    response = client.post(path.format(id=add_restaurant()), data=body,
                           content_type="application/json")

    assert response.status_code == 400, response.status_code
    assert count(run_sql, "reviews") == 0
    assert count(run_sql, "restaurants") == 1  # only the one added to review
