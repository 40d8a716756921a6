"""Forms (Flask-WTF). Server-side bounds mirror the schema.

Forms carry no CSRF token: the site refuses forms sent from other sites by the browser's
Fetch Metadata and Origin headers instead (webapp/security.py).

Also how a submitted form is read (`FormRequest`): every size limit that can refuse a form is
named when it is hit, with the fields read before it, so the error page can say which limit it
was, on the form the visitor was filling, with what they typed still in it.
"""

from __future__ import annotations

import unicodedata
import uuid
from typing import IO

from flask import Flask, Request, g, request
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from flask_wtf.form import _Auto as AUTO_FORMDATA  # a form built without formdata: read the request
from werkzeug.datastructures import CombinedMultiDict, FileStorage, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser, MultiPartParser
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData
from wtforms import HiddenField, RadioField, SelectChoice, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, ValidationError

from . import tokens
from .config import current_settings
from .models import MAX_RATING, MIN_RATING
from .security import PAGE_HAS_A_FORM

NUL_MESSAGE = (
    "This text contains a NUL character (an invisible control character), which cannot be "
    "saved. Remove it and try again."
)
# Unicode categories that draw nothing by themselves: format characters (zero-width spaces and
# joiners, bidi controls, the BOM), controls, separators, and combining marks with no base.
_INVISIBLE_CATEGORIES = {"Cf", "Cc", "Zs", "Zl", "Zp", "Mn", "Mc", "Me"}
# Letters and symbols that render as blank space although their category says otherwise
# (Hangul fillers, the blank Braille pattern).
_BLANK_CHARACTERS = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"}


def has_visible_character(text: str) -> bool:
    return any(
        char not in _BLANK_CHARACTERS and unicodedata.category(char) not in _INVISIBLE_CATEGORIES
        for char in text
    )


def _clean_text(value: str | None) -> str | None:
    """NFC-normalised and trimmed; text that would show nothing at all counts as empty."""
    if not isinstance(value, str):
        return value
    value = unicodedata.normalize("NFC", value).strip()
    return value if has_visible_character(value) else ""


def _no_nul(_form, field) -> None:
    # PostgreSQL text cannot hold U+0000; without this the insert fails with a server error.
    if isinstance(field.data, str) and "\0" in field.data:
        raise ValidationError(NUL_MESSAGE)


def _text(*validators) -> dict:
    """Options shared by every free-text field: cleaned, its own checks, and no NUL."""
    return {"filters": [_clean_text], "validators": [*validators, _no_nul]}


def _submission_token(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except (TypeError, ValueError):
        return None  # not one we issued: the submission is saved, just not deduplicated


class SubmissionForm(FlaskForm):
    """A form that saves once however often it is posted (a double click, two tabs, a retry).

    Each rendered form carries a fresh token; the row it saves stores it under a unique
    constraint, so a second post with the same token finds the first row instead of adding one.
    """

    class Meta:
        csrf = False  # see the module doc

        def wrap_formdata(self, form, formdata):
            """What was posted as a form: its fields, and files only under the form's file
            fields. A file sent in place of a text field leaves that field empty (its own check
            answers), and a JSON body is no form at all: neither reaches a field as data it
            cannot handle."""
            if formdata is not AUTO_FORMDATA:  # the caller's own data (or None: blank)
                return formdata
            if not form.is_submitted():
                return None
            files = MultiDict([(name, upload) for name, upload in request.files.items(multi=True)
                               if isinstance(form._fields.get(name), FileField)])
            return CombinedMultiDict((files, request.form)) if files else request.form

    submission_token = HiddenField(filters=[_submission_token])

    def token_to_render(self) -> str:
        """The submitted token when there was one (nothing was saved with it), else a new one."""
        if self.submission_token.data:
            setattr(g, PAGE_HAS_A_FORM, True)
            return str(self.submission_token.data)
        return self.new_token()

    @staticmethod
    def new_token() -> str:
        """A fresh token for a page's form: that page is then kept out of caches (security.py)."""
        setattr(g, PAGE_HAS_A_FORM, True)
        return str(tokens.uuid4())


def _rating(value) -> int | None:
    """The chosen stars; a value that is not a number is left to the range check's message."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class RestaurantForm(SubmissionForm):
    name = StringField(
        "Name", **_text(DataRequired("Enter the restaurant's name."), Length(max=100))
    )
    street_address = StringField(
        "Street address", **_text(DataRequired("Enter the street address."), Length(max=200))
    )
    description = TextAreaField("Description (optional)", **_text(Length(max=2000)))


class ReviewForm(SubmissionForm):
    reviewer_name = StringField(
        "Your name", **_text(DataRequired("Enter your name."), Length(max=100))
    )
    rating = RadioField(
        "Rating",
        coerce=_rating,
        choices=[
            SelectChoice(stars, f"{stars} star{'s' if stars > 1 else ''}")
            for stars in range(MIN_RATING, MAX_RATING + 1)
        ],
        # NumberRange below gives a clearer message than WTForms' "Not a valid choice".
        validate_choice=False,
        validators=[
            InputRequired(f"Choose a rating from {MIN_RATING} to {MAX_RATING}."),
            NumberRange(
                min=MIN_RATING,
                max=MAX_RATING,
                message=f"Choose a rating from {MIN_RATING} to {MAX_RATING}.",
            ),
        ],
    )
    review_text = TextAreaField(
        "Your review",
        **_text(DataRequired("Write a few words about your visit."), Length(max=2000)),
    )
    # Validated by content in images.py (the browser-supplied type and name are not trusted).
    photo = FileField("Photo (optional: JPEG, PNG or WebP)")


# --- Reading submitted forms --------------------------------------------------------------

BODY_LIMIT = "body"  # MAX_CONTENT_LENGTH (or, for bodies without files, MAX_FORM_MEMORY_SIZE)
FIELD_LIMIT = "field"  # MAX_FORM_MEMORY_SIZE for one text field
PARTS_LIMIT = "parts"  # MAX_FORM_PARTS


class FormTooLarge(RequestEntityTooLarge):
    """A form refused by one of its size limits.

    ``fields`` are the text fields read completely before the limit was hit (each within the
    form-memory limit, so safe to show again); ``field_name`` is the field that was too long.
    """

    def __init__(self, limit: str, fields: MultiDict, field_name: str | None = None) -> None:
        super().__init__()
        self.limit = limit
        self.fields = fields
        self.field_name = field_name


class BoundedMultiPartParser(MultiPartParser):
    """werkzeug's multipart reading, with each limit named and uploaded files capped.

    Files keep at most ``max_file_bytes`` in all: past that the rest is read and dropped, so an
    oversized photo still arrives as one byte too many (the view says so next to the field)
    while the text typed with it is kept, and no upload holds more than that on disk.
    """

    def __init__(self, *args, max_file_bytes: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.file_bytes_left = max_file_bytes
        self.field_bytes = 0

    def parse(self, stream: IO[bytes], boundary: bytes, content_length: int | None):
        # The decoder's own part count would raise a bare 413: parts are counted below.
        decoder = MultipartDecoder(boundary, max_form_memory_size=self.max_form_memory_size)
        fields: list[tuple[str, str]] = []
        files: list[tuple[str, FileStorage]] = []
        parts = 0
        part: Field | File | None = None
        container: list[bytes] | IO[bytes] = []
        while True:
            chunk = self._read(stream, fields)
            try:
                decoder.receive_data(chunk or None)
            except RequestEntityTooLarge:
                name = part.name if part else None
                raise FormTooLarge(FIELD_LIMIT, self.cls(fields), name) from None
            event = decoder.next_event()
            while not isinstance(event, (NeedData, Epilogue)):
                if isinstance(event, (Field, File)):
                    parts += 1
                    if self.max_form_parts is not None and parts > self.max_form_parts:
                        raise FormTooLarge(PARTS_LIMIT, self.cls(fields))
                    part, self.field_bytes = event, 0
                    container = (
                        [] if isinstance(event, Field)
                        else self.start_file_streaming(event, content_length)
                    )
                elif isinstance(event, Data):
                    self._keep(part, container, event.data, fields)
                    if not event.more_data:
                        self._finish(part, container, fields, files)
                event = decoder.next_event()
            if not chunk:
                return self.cls(fields), self.cls(files)

    def _read(self, stream: IO[bytes], fields: list) -> bytes:
        # The decoder refuses to buffer more than the form-memory limit at once: chunks of half
        # of it let a field's own size be checked (and named) first.
        size = self.buffer_size
        if self.max_form_memory_size is not None:
            size = max(1, min(size, self.max_form_memory_size // 2))
        try:
            return stream.read(size)
        except RequestEntityTooLarge:  # a body without Content-Length ran past the limit
            raise FormTooLarge(BODY_LIMIT, self.cls(fields)) from None

    def _keep(self, part, container, data: bytes, fields: list) -> None:
        if isinstance(part, Field):
            container.append(data)
            self.field_bytes += len(data)
            limit = self.max_form_memory_size
            if limit is not None and self.field_bytes > limit:
                raise FormTooLarge(FIELD_LIMIT, self.cls(fields), part.name)
            return
        kept = data[: self.file_bytes_left]
        self.file_bytes_left -= len(kept)
        container.write(kept)

    def _finish(self, part, container, fields: list, files: list) -> None:
        if not part.name:
            # A name werkzeug could not read (a line break in it): no field can be sent under
            # it, and Flask-WTF's token lookup would fail on a nameless key.
            return
        if isinstance(part, Field):
            charset = self.get_part_charset(part.headers)
            fields.append((part.name, b"".join(container).decode(charset, "replace")))
            return
        container.seek(0)
        upload = FileStorage(container, part.filename, part.name, headers=part.headers)
        files.append((part.name, upload))


class BoundedFormDataParser(FormDataParser):
    def __init__(self, *args, max_file_bytes: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_file_bytes = max_file_bytes

    def _parse_multipart(self, stream, mimetype, content_length, options):
        boundary = options.get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        parser = BoundedMultiPartParser(
            stream_factory=self.stream_factory,
            max_form_memory_size=self.max_form_memory_size,
            max_form_parts=self.max_form_parts,
            cls=self.cls,
            max_file_bytes=self.max_file_bytes,
        )
        form, files = parser.parse(stream, boundary, content_length)
        return stream, form, files


class FormRequest(Request):
    """Flask's request, reading forms with `BoundedFormDataParser`.

    Only multipart bodies carry files; any other body is held in memory whole to be parsed, so
    it may be no larger than the form-memory limit.
    """

    @property
    def max_content_length(self) -> int | None:
        limit = super().max_content_length
        if self.mimetype == "multipart/form-data" or limit is None:
            return limit
        return min(limit, self.max_form_memory_size or limit)

    def make_form_data_parser(self) -> FormDataParser:
        return BoundedFormDataParser(
            stream_factory=self._get_file_stream,
            max_form_memory_size=self.max_form_memory_size,
            max_content_length=self.max_content_length,
            max_form_parts=self.max_form_parts,
            cls=self.parameter_storage_class,
            # One byte past the photo limit: enough for the view to say it is too large.
            max_file_bytes=self._max_file_bytes(),
        )

    def _max_file_bytes(self) -> int:
        return current_settings().max_photo_bytes + 1

    def _load_form_data(self) -> None:
        try:
            super()._load_form_data()
        except RequestEntityTooLarge as error:
            refused = error if isinstance(error, FormTooLarge) else FormTooLarge(
                BODY_LIMIT, self.parameter_storage_class()
            )
            # Whatever asks for the form next (an error page) sees what was read, instead of
            # parsing a half-read body again.
            self.__dict__.update(form=refused.fields, files=self.parameter_storage_class())
            raise refused from None


def init_app(app: Flask) -> None:
    app.request_class = FormRequest
