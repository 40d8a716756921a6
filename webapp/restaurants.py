"""Restaurants: the home page (search, sort, pages), the create form and the details page."""

from __future__ import annotations

import functools

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
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .config import current_settings
from .db import get_engine, get_session
from .forms import RestaurantForm, ReviewForm
from .fragments import SlottedPage, memoised, memoised_search, rendered_once
from .models import MAX_ID, Restaurant, is_repeated_submission
from .page_cache import CachedListing, details_cache, listing_cache
from .queries import (
    DEFAULT_SORT,
    LISTED_MAX,
    SORT_ORDERS,
    ListingQuery,
    RestaurantDetails,
    RestaurantPage,
    restaurant_details,
    restaurant_page,
)

bp = Blueprint("restaurants", __name__)

# Bounded like the column, so an over-large id in the address is a 404, not a database error.
RESTAURANT_ID_RULE = f"<int(max={MAX_ID}):restaurant_id>"
_BLANK_REVIEW_FORM = "blank_review_form_fields"  # app.extensions key
# What differs between home pages in one order: the search, the page's listing, the visitor.
INDEX_SLOTS = ("title", "search_value", "messages_html", "listing")
_INDEX_SHELL = "index_page_shell"  # app.extensions key, with the sort order


# The name column's length: a longer search text could match nothing.
MAX_SEARCH_LENGTH = 100
SORT_LABELS = {"name": "Name", "rating": "Rating", "reviews": "Number of reviews"}


@bp.get("/")
def index():
    query = listing_query(current_settings().restaurants_per_page)
    if query.search or "_flashes" in session:
        # A search, or a message for this visitor: rendered for this request (a search's
        # listing is not kept either, so searches cannot push the shared pages out).
        page = _render_home(query)
    else:
        # The whole page is then the same for every visitor: kept with the listing.
        page = listing_cache().get_or_load(("page", *_listing_key(query)),
                                           lambda: _render_home(query))
    if page is None:
        abort(404)
    return page.html


def listing_query(per_page: int) -> ListingQuery:
    """The home page's search text, sort order and page from the address; 400 or 404 when one
    cannot be used (an unreadable page number counts as the first page, as links never send
    one)."""
    args = request.args
    if not args:  # the home page as most visitors open it
        return ListingQuery(search="", sort=DEFAULT_SORT, page=1, per_page=per_page)
    search = " ".join(args.get("q", "").split())
    if len(search) > MAX_SEARCH_LENGTH:
        abort(400, f"The search text is longer than {MAX_SEARCH_LENGTH} characters: no "
                   "restaurant name is that long.")
    if "\0" in search:
        abort(400, "The search text contains a NUL character, which no name holds.")
    sort = args.get("sort", DEFAULT_SORT)
    if sort not in SORT_ORDERS:
        abort(400, f"Unknown sort order: choose one of {', '.join(SORT_ORDERS)}.")
    page_number = args.get("page", 1, type=int)
    if not 1 <= page_number <= last_possible_page(per_page):
        abort(404)
    return ListingQuery(search=search, sort=sort, page=page_number, per_page=per_page)


def _listing_key(query: ListingQuery) -> tuple:
    return query.sort, query.page, query.per_page


def _render_home(query: ListingQuery) -> CachedListing | None:
    if query.search:
        listing = _render_listing(query)
    else:
        listing = listing_cache().get_or_load(_listing_key(query),
                                              lambda: _render_listing(query))
    if listing is None:
        return None
    title = escape(f"Search: {query.search}") if query.search else "Restaurants"
    html = _index_shell(query.sort).html(
        title=title, search_value=escape(query.search), messages_html=visitor_messages(),
        listing=listing.html)
    return listing._replace(html=html)


def _index_shell(sort: str) -> SlottedPage:
    """The home page in one order, with a slot for everything that depends on the search, the
    page or the visitor: rendered once per process and order."""
    return rendered_once((_INDEX_SHELL, sort), lambda: SlottedPage.render(
        lambda **slots: render_template("restaurants/index.html", sort=sort,
                                        sort_labels=SORT_LABELS, **slots),
        INDEX_SLOTS))


def last_possible_page(per_page: int) -> int:
    """The last page the listing reaches (LISTED_MAX); beyond it, no query."""
    return -(-LISTED_MAX // per_page)


def _render_listing(query: ListingQuery) -> CachedListing | None:
    """One page's restaurant cards and pagination as PostgreSQL holds them now, or None past
    the last page.

    The page around them (flash messages) stays per request. Listings are rendered once per
    content they show (fragments.py); a search's in a memo of its own, so that search texts
    cannot push out the listings everyone shares.
    """
    page = restaurant_page(get_engine(), query)
    if query.page > 1 and not page.items:
        return None
    key = ("listing", query, page)
    render = functools.partial(_render_cards, query, page)
    html = memoised_search(key, render) if query.search else memoised(key, render)
    return CachedListing(html=html, sort=query.sort,
                         restaurant_ids=frozenset(item.id for item in page.items))


def _render_cards(query: ListingQuery, page: RestaurantPage) -> bytes:
    """The listing's markup, encoded once for the pages it is joined into (fragments.py)."""
    # Links to the other pages keep the search and the order (the default left out).
    link_args = {key: value for key, value in (("q", query.search), ("sort", query.sort))
                 if value and value != DEFAULT_SORT}
    return render_template("restaurants/_listing.html", page=page, query=query,
                           link_args=link_args,
                           detail_prefix=url_prefix("restaurants.detail", restaurant_id=0)).encode()


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


# What differs between restaurants on the details page, and what differs between visitors.
RESTAURANT_SLOTS = ("title", "summary", "reviews", "review_action")
VISITOR_SLOTS = ("messages_html", "form_fields", "submission_token")
_DETAILS_SHELL = "details_page_shell"  # app.extensions key


@bp.get(f"/restaurants/{RESTAURANT_ID_RULE}")
def detail(restaurant_id: int):
    return render_detail(restaurant_id)


def render_detail(restaurant_id: int, review_form: ReviewForm | None = None, status: int = 200):
    """The details page with the review form: blank, or as submitted with its errors.

    With a blank form it is the restaurant's page from the details cache; a submitted form is
    shown on the restaurant as PostgreSQL holds it now. Either way, this request's messages and
    tokens are joined in.
    """
    if review_form is None:
        page = details_cache().get_or_load(restaurant_id, lambda: _details_page(restaurant_id))
        form_fields, submission_token = {}, ReviewForm.new_token()
    else:
        page = _restaurant_page(restaurant_id)
        form_fields = {"form_fields": _form_fields(review_form)}
        submission_token = review_form.token_to_render()
    if page is None:
        abort(404)
    # Slots take HTML: the token is the site's own, escaped all the same.
    html = page.html(messages_html=visitor_messages(), submission_token=escape(submission_token),
                     **form_fields)
    return html, status


def visitor_messages() -> str:
    """This visitor's flashed messages as HTML, once; nothing (no template) when there are
    none, as for every visitor without a session."""
    if "_flashes" not in session:
        return ""
    return render_template("_messages.html")


def _details_page(restaurant_id: int) -> SlottedPage | None:
    """A restaurant's page with a blank review form: what the details cache keeps."""
    page = _restaurant_page(restaurant_id)
    return page and page.fill(form_fields=_blank_review_form_fields())


def _restaurant_page(restaurant_id: int) -> SlottedPage | None:
    """The page shell filled with the restaurant as PostgreSQL holds it now: its name, summary
    and reviews, rendered once per content they show (fragments.py); the visitor's slots stay
    open."""
    details = restaurant_details(get_engine(), restaurant_id)
    if details is None:
        return None
    return memoised(("details", details), lambda: _fill_restaurant(details))


def _fill_restaurant(details: RestaurantDetails) -> SlottedPage:
    templates = current_app.jinja_env
    return _details_shell().fill(
        title=escape(details.name),
        summary=templates.get_template("restaurants/_summary.html").render(restaurant=details),
        reviews=templates.get_template("restaurants/_reviews.html").render(
            restaurant=details, photo_prefix=url_prefix("photos.show", name="0")),
        review_action=escape(url_for("reviews.create", restaurant_id=details.id)),
    )


def _details_shell() -> SlottedPage:
    """The details page with a slot for everything that depends on the restaurant or the
    visitor: rendered once per process (the templates and settings alone decide the rest)."""
    return rendered_once(_DETAILS_SHELL, lambda: SlottedPage.render(
        lambda **slots: render_template("restaurants/detail.html", **slots),
        RESTAURANT_SLOTS + VISITOR_SLOTS))


def _blank_review_form_fields() -> bytes:
    # Depends on nothing but the app's settings: labels, inputs and the photo size hint.
    # Never the submitted data (formdata=None). Encoded once, like the page it goes into.
    return rendered_once(_BLANK_REVIEW_FORM,
                         lambda: _form_fields(ReviewForm(formdata=None)).encode())


def _form_fields(form: ReviewForm) -> Markup:
    # render_template autoescapes every value, so its output is safe HTML to embed.
    return Markup(render_template("restaurants/_review_form_fields.html", form=form))  # noqa: S704


def url_prefix(endpoint: str, **placeholder) -> str:
    """The URL of ``endpoint`` without its last part, given as a placeholder ("0"): a page
    linking to many items builds one URL instead of one per item."""
    [value] = placeholder.values()
    url = url_for(endpoint, **placeholder)
    return url[:-len(str(value))]
