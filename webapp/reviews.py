"""Reviews: validate, store the photo, then save the review, with nothing left half-saved."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, redirect, url_for
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import budget
from .config import current_settings
from .db import get_engine, get_session
from .forms import ReviewForm
from .images import PhotoRejected, ValidatedPhoto, current_decode_budget, validate_photo
from .models import Restaurant, Review, is_repeated_submission
from .restaurants import RESTAURANT_ID_RULE, render_detail
from .storage import StoredPhoto, current_photo_store

logger = logging.getLogger(__name__)

bp = Blueprint("reviews", __name__)


@bp.post(f"/restaurants/{RESTAURANT_ID_RULE}/reviews")
def create(restaurant_id: int):
    # The form and photo are checked before the database is asked anything: decoding a large
    # photo is the visitor's time, not part of the request's dependency budget (budget.py).
    # render_detail answers 404 for an unknown restaurant on these paths too.
    form = ReviewForm()
    if not form.validate_on_submit():
        return render_detail(restaurant_id, form, status=400)
    try:
        photo = _validated_photo(form)
    except PhotoRejected as rejection:
        form.photo.errors = [rejection.message]
        page, status = render_detail(restaurant_id, form, status=rejection.status)
        retry = {} if rejection.retry_after is None else {"Retry-After": str(rejection.retry_after)}
        return page, status, retry
    session = get_session()
    if session.get(Restaurant, restaurant_id) is None:
        abort(404)
    # End the read transaction: its connection goes back to the pool instead of staying
    # checked out (and armed with the request's deadline, db.py) through the photo upload.
    session.rollback()
    review = Review(
        restaurant_id=restaurant_id,
        reviewer_name=form.reviewer_name.data,
        rating=form.rating.data,
        review_text=form.review_text.data,
        submission_token=form.submission_token.data,
    )
    if photo is not None:
        review.photo_width, review.photo_height = photo.width, photo.height
    try:
        save_review(session, review, photo)
    except IntegrityError as error:
        # The same form was posted before (or at the same time) and that post saved it: answer
        # as that post did, on the restaurant it was saved for. Its photo blob, the same bytes
        # under the same name, stays.
        saved_for = is_repeated_submission(error) and session.scalar(
            select(Review.restaurant_id).where(Review.submission_token == review.submission_token))
        if not saved_for:
            raise
        restaurant_id = saved_for
    flash("Thank you for your review!")
    return redirect(url_for("restaurants.detail", restaurant_id=restaurant_id), code=303)


def _validated_photo(form: ReviewForm) -> ValidatedPhoto | None:
    upload = form.photo.data
    if not upload:  # No file chosen: browsers send an empty part without a file name.
        return None
    limit = current_settings().max_photo_bytes
    # Read one byte past the limit: enough to know it is too large without reading it all.
    return validate_photo(upload.stream.read(limit + 1), limit, current_decode_budget())


def save_review(session: Session, review: Review, photo: ValidatedPhoto | None) -> None:
    """Upload the photo first, then insert; if the insert fails, remove the new blob.

    In this order a failed upload saves no review (the exception stops us before the insert),
    and a failed insert leaves no orphan blob behind.
    """
    store = current_photo_store()
    stored = store.upload(photo.data, photo.extension) if photo else None
    review.photo_name = stored.name if stored else None
    try:
        session.add(review)
        session.commit()
    except BaseException:
        session.rollback()
        # With the budget spent the clean-up could not finish either; the sweep removes the
        # blob later (webapp/sweep.py).
        if stored is not None and stored.created and not _budget_spent():
            _delete_unless_used(stored)
        raise


def _delete_unless_used(stored: StoredPhoto) -> None:
    """Delete a blob this request created, unless a saved review refers to it after all.

    Names are content-addressed: another review with the same bytes may have found our blob
    already there (so it did not create it) and been saved meanwhile, or be about to be saved:
    its upload touched the blob, so the delete, conditional on our ETag, leaves it alone.
    """
    try:
        if not _photo_in_use(stored.name):
            current_photo_store().delete(stored)
    except Exception:
        # Keep the original failure as the one reported; name the blob so it can be removed.
        # If the check itself failed, keeping a possibly orphaned blob is the safe side.
        logger.exception("Could not delete photo blob %s after the review failed to save",
                         stored.name)


def _budget_spent() -> bool:
    try:
        budget.remaining("PostgreSQL")
    except budget.DependencyTimeout:
        return True
    return False


def _photo_in_use(name: str) -> bool:
    # A connection of its own: the request's session has just failed and been rolled back.
    with get_engine().connect() as connection:
        return connection.scalar(select(exists().where(Review.photo_name == name)))
