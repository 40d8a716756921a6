"""Forms (Flask-WTF: every one carries a CSRF token). Server-side bounds mirror the schema."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import RadioField, SelectChoice, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, ValidationError

from .models import MAX_RATING, MIN_RATING

NUL_MESSAGE = (
    "This text contains a NUL character (an invisible control character), which cannot be "
    "saved. Remove it and try again."
)


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def _no_nul(_form, field) -> None:
    # PostgreSQL text cannot hold U+0000; without this the insert fails with a server error.
    if isinstance(field.data, str) and "\0" in field.data:
        raise ValidationError(NUL_MESSAGE)


def _text(*validators) -> dict:
    """Options shared by every free-text field: trimmed, its own checks, and no NUL."""
    return {"filters": [_strip], "validators": [*validators, _no_nul]}


class RestaurantForm(FlaskForm):
    name = StringField(
        "Name", **_text(DataRequired("Enter the restaurant's name."), Length(max=100))
    )
    street_address = StringField(
        "Street address", **_text(DataRequired("Enter the street address."), Length(max=200))
    )
    description = TextAreaField("Description (optional)", **_text(Length(max=2000)))


class ReviewForm(FlaskForm):
    reviewer_name = StringField(
        "Your name", **_text(DataRequired("Enter your name."), Length(max=100))
    )
    rating = RadioField(
        "Rating",
        coerce=int,
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
