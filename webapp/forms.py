"""Forms (Flask-WTF: every one carries a CSRF token). Server-side bounds mirror the schema."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import RadioField, SelectChoice, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from .models import MAX_RATING, MIN_RATING


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class RestaurantForm(FlaskForm):
    name = StringField(
        "Name",
        filters=[_strip],
        validators=[DataRequired("Enter the restaurant's name."), Length(max=100)],
    )
    street_address = StringField(
        "Street address",
        filters=[_strip],
        validators=[DataRequired("Enter the street address."), Length(max=200)],
    )
    description = TextAreaField(
        "Description (optional)", filters=[_strip], validators=[Length(max=2000)]
    )


class ReviewForm(FlaskForm):
    reviewer_name = StringField(
        "Your name",
        filters=[_strip],
        validators=[DataRequired("Enter your name."), Length(max=100)],
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
        filters=[_strip],
        validators=[DataRequired("Write a few words about your visit."), Length(max=2000)],
    )
    # Validated by content in images.py (the browser-supplied type and name are not trusted).
    photo = FileField("Photo (optional: JPEG, PNG or WebP)")
