"""Restaurants: the paginated home page, the create form and the details page."""

from __future__ import annotations

from typing import NamedTuple

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .db import get_session
from .forms import RestaurantForm, ReviewForm
from .models import MAX_ID, Restaurant, is_repeated_submission
from .page_cache import details_cache, listing_cache
from .queries import restaurant_details, restaurant_page

bp = Blueprint("restaurants", __name__)

# Bounded like the column, so an over-large id in the address is a 404, not a database error.
RESTAURANT_ID_RULE = f"<int(max={MAX_ID}):restaurant_id>"
_BLANK_REVIEW_FORM = "blank_review_form_fields"  # app.extensions key


@bp.get("/")
def index():
    page_number = request.args.get("page", 1, type=int)
    per_page = current_app.config["RESTAURANTS_PER_PAGE"]
    if not 1 <= page_number <= last_possible_page(per_page):
        abort(404)
    if "_flashes" in session:
        # A message waits for this visitor: only the listing is shared, the page is theirs.
        page = _render_home(page_number, per_page)
    else:
        # Without one, the whole page is the same for every visitor: kept with the listing.
        page = listing_cache().get_or_load(
            ("page", page_number, per_page), lambda: _render_home(page_number, per_page)
        )
    if page is None:
        abort(404)
    return page


def _render_home(page_number: int, per_page: int) -> str | None:
    listing = listing_cache().get_or_load(
        (page_number, per_page), lambda: _render_listing(page_number, per_page)
    )
    if listing is None:
        return None
    return render_template("restaurants/index.html", listing=listing)


def last_possible_page(per_page: int) -> int:
    """The last page there could be if every possible id were used; beyond it, no query."""
    return -(-MAX_ID // per_page)


def _render_listing(page_number: int, per_page: int) -> Markup | None:
    """One page's restaurant cards and pagination, or None past the last page.

    Rendered HTML is what gets cached: the page around it (flash messages) stays per request.
    """
    page = restaurant_page(get_session(), page_number, per_page)
    if page_number > 1 and not page.items:
        return None
    # render_template autoescapes every value, so its output is safe HTML to embed.
    return Markup(render_template("restaurants/_listing.html", page=page))  # noqa: S704


@bp.route("/restaurants/new", methods=["GET", "POST"])
def create():
    form = RestaurantForm()
    if form.validate_on_submit():
        restaurant_id = _save_restaurant(form)
        flash(f"{form.name.data} was added. Be the first to review it!")
        return redirect(url_for(".detail", restaurant_id=restaurant_id), code=303)
    return render_new_restaurant(form, status=400 if form.is_submitted() else 200)


def render_new_restaurant(form: RestaurantForm, status: int = 200):
    page = render_template("restaurants/new.html", form=form,
                           submission_token=form.token_to_render())
    return page, status


def _save_restaurant(form: RestaurantForm) -> int:
    """The new restaurant's id; or, for a form already saved, the id it was saved under."""
    restaurant = Restaurant(
        name=form.name.data,
        street_address=form.street_address.data,
        description=form.description.data or "",
        submission_token=form.submission_token.data,
    )
    session = get_session()
    session.add(restaurant)
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        saved_before = is_repeated_submission(error) and session.scalar(
            select(Restaurant.id).where(Restaurant.submission_token == form.submission_token.data))
        if not saved_before:
            raise
        return saved_before
    return restaurant.id


class RenderedRestaurant(NamedTuple):
    """A restaurant's part of the details page, the same for every visitor (so cacheable)."""

    id: int
    name: str
    summary: Markup
    reviews: Markup


@bp.get(f"/restaurants/{RESTAURANT_ID_RULE}")
def detail(restaurant_id: int):
    return render_detail(restaurant_id)


def render_detail(restaurant_id: int, review_form: ReviewForm | None = None, status: int = 200):
    """The details page with the review form: blank, or as submitted with its errors.

    The restaurant and its reviews come from the details cache and a blank form's fields are
    rendered once per process; the CSRF token, and a submitted form, are this request's own.
    """
    restaurant = details_cache().get_or_load(
        restaurant_id, lambda: _render_restaurant(restaurant_id)
    )
    if restaurant is None:
        abort(404)
    if review_form is None:
        fields, token = _blank_review_form_fields(), ReviewForm.new_token()
    else:
        fields, token = _form_fields(review_form), review_form.token_to_render()
    page = render_template("restaurants/detail.html", restaurant=restaurant, form_fields=fields,
                           submission_token=token)
    return page, status


def _blank_review_form_fields() -> Markup:
    # Depends on nothing but the app's settings: labels, inputs and the photo size hint.
    # Never the submitted data (formdata=None); the CSRF token is rendered per request.
    blank = current_app.extensions.get(_BLANK_REVIEW_FORM)
    if blank is None:
        blank = _form_fields(ReviewForm(formdata=None, meta={"csrf": False}))
        current_app.extensions[_BLANK_REVIEW_FORM] = blank
    return blank


def _form_fields(form: ReviewForm) -> Markup:
    # render_template autoescapes every value, so its output is safe HTML to embed.
    return Markup(render_template("restaurants/_review_form_fields.html", form=form))  # noqa: S704


def _render_restaurant(restaurant_id: int) -> RenderedRestaurant | None:
    details = restaurant_details(get_session(), restaurant_id)
    if details is None:
        return None
    # render_template autoescapes every value, so its output is safe HTML to embed.
    return RenderedRestaurant(
        id=details.id,
        name=details.name,
        summary=Markup(render_template("restaurants/_summary.html", restaurant=details)),  # noqa: S704
        reviews=Markup(render_template("restaurants/_reviews.html", restaurant=details)),  # noqa: S704
    )
