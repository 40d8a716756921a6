"""Restaurants: the paginated home page, the create form and the details page."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from markupsafe import Markup

from .db import get_session
from .forms import RestaurantForm, ReviewForm
from .listing_cache import listing_cache
from .models import MAX_ID, Restaurant
from .queries import restaurant_page, restaurant_summary, reviews_newest_first

bp = Blueprint("restaurants", __name__)

# Bounded like the column, so an over-large id in the address is a 404, not a database error.
RESTAURANT_ID_RULE = f"<int(max={MAX_ID}):restaurant_id>"


@bp.get("/")
def index():
    page_number = request.args.get("page", 1, type=int)
    per_page = current_app.config["RESTAURANTS_PER_PAGE"]
    if not 1 <= page_number <= last_possible_page(per_page):
        abort(404)
    listing = listing_cache().get_or_load(
        (page_number, per_page), lambda: _render_listing(page_number, per_page)
    )
    if listing is None:
        abort(404)
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
        restaurant = Restaurant(
            name=form.name.data,
            street_address=form.street_address.data,
            description=form.description.data or "",
        )
        session = get_session()
        session.add(restaurant)
        session.commit()
        flash(f"{restaurant.name} was added. Be the first to review it!")
        return redirect(url_for(".detail", restaurant_id=restaurant.id), code=303)
    status = 400 if form.is_submitted() else 200
    return render_template("restaurants/new.html", form=form), status


@bp.get(f"/restaurants/{RESTAURANT_ID_RULE}")
def detail(restaurant_id: int):
    return render_detail(restaurant_id, ReviewForm())


def render_detail(restaurant_id: int, review_form: ReviewForm, status: int = 200):
    """The details page with its review form (also re-rendered with errors by reviews.py)."""
    session = get_session()
    summary = restaurant_summary(session, restaurant_id)
    if summary is None:
        abort(404)
    reviews = reviews_newest_first(session, restaurant_id)
    page = render_template(
        "restaurants/detail.html", summary=summary, reviews=reviews, form=review_form
    )
    return page, status
