"""Error pages: a clear message for people, the details in the log, never a stack trace."""

from __future__ import annotations

import logging

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from flask import Flask, current_app, render_template, request
from jinja2.filters import do_filesizeformat
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge

from .budget import DependencyTimeout
from .config import current_settings
from .db import DatabaseTokenError, error_kind
from .forms import BODY_LIMIT, FIELD_LIMIT, PARTS_LIMIT, FormTooLarge, RestaurantForm, ReviewForm
from .images import too_large_message
from .restaurants import render_detail, render_new_restaurant
from .security import CrossOriginRequest

logger = logging.getLogger(__name__)

# Connection-level failures: the server is down, unreachable, refusing our token, or the pool
# is exhausted. Errors in a statement itself (bugs, constraint violations) stay 500s.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError, DatabaseTokenError)
# Cannot connect, connection dropped, no token, or the service answered with an error status.
STORAGE_UNAVAILABLE = (
    ServiceRequestError,
    ServiceResponseError,
    ClientAuthenticationError,
    HttpResponseError,
)
RETRY_AFTER_SECONDS = 30


def init_app(app: Flask) -> None:
    app.register_error_handler(CrossOriginRequest, _cross_origin_form)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DataError, _value_refused)
    # Any other database error on a connection that turned out to be dead (SQLAlchemy marks
    # it invalidated) is an outage too, whatever class the driver gave it.
    app.register_error_handler(DBAPIError, _database_error)
    for error in DATABASE_UNAVAILABLE:
        app.register_error_handler(error, _database_unavailable)
    for error in STORAGE_UNAVAILABLE:
        app.register_error_handler(error, _storage_unavailable)
    app.register_error_handler(DependencyTimeout, _budget_ran_out)


def _page(status: int, title: str, message: str, **context):
    page = render_template("errors/error.html", status=status, title=title, message=message,
                           **context)
    return page, status


def _http_error(error: HTTPException):
    if error.code == 404:
        return _page(404, "Page not found", "There is nothing at this address. It may have moved.")
    if error.code == 500:
        return _page(500, "Something went wrong", "The problem was logged. Please try again.")
    return _page(error.code or 500, error.name, error.description or "")


def _cross_origin_form(error: CrossOriginRequest):
    return _page(403, "Form sent from another website", error.description)


def _too_large(error: RequestEntityTooLarge):
    """A form over one of its size limits: that limit named, on the form the visitor filled.

    The text fields read before the limit was hit come back in the form (each was within the
    form-memory limit); the field that was too long, and any photo, do not.
    """
    refused = error if isinstance(error, FormTooLarge) else FormTooLarge(BODY_LIMIT, None)
    not_saved = " Nothing was saved."
    if request.endpoint == "restaurants.create":
        form = RestaurantForm(formdata=refused.fields)
        _report_limit(form, refused, None, not_saved)
        return render_new_restaurant(form, status=413)
    restaurant_id = (request.view_args or {}).get("restaurant_id")
    if request.endpoint == "reviews.create" and restaurant_id is not None:
        form = ReviewForm(formdata=refused.fields)
        photo = form.photo if _may_carry_a_photo() else None
        _report_limit(form, refused, photo, " Your review was not saved.")
        # The form reads the body (and is refused) before the view could 404 or touch the
        # database, so the details page may not exist or be readable: then the plain
        # page. An error raised inside an error handler would become a 500.
        try:
            return render_detail(restaurant_id, form, status=413)
        except NotFound:
            pass
        except DATABASE_UNAVAILABLE as error:
            return _database_unavailable(error)
        except DependencyTimeout as error:
            return _budget_ran_out(error)
    title = "Upload too large" if refused.limit == BODY_LIMIT else "Form too large"
    return _page(413, title, _limit_message(refused, None) + not_saved)


def _report_limit(form, refused: FormTooLarge, file_field, not_saved: str) -> None:
    """Put the limit's message next to the field it concerns, or above the whole form."""
    field = form._fields.get(refused.field_name) if refused.limit == FIELD_LIMIT else file_field
    if refused.limit == PARTS_LIMIT or field is None or field.name == "submission_token":
        form.form_errors.append(_limit_message(refused, None) + not_saved)
    else:
        field.errors = [_limit_message(refused, field) + not_saved]


def _limit_message(refused: FormTooLarge, field) -> str:
    config = current_app.config
    if refused.limit == PARTS_LIMIT:
        return (f"The form arrived in more than {config['MAX_FORM_PARTS']} parts, more than "
                "it can have; it was not read.")
    if refused.limit == FIELD_LIMIT:
        what = f"“{field.label.text}”" if field is not None else "A text field"
        return (f"{what} is longer than {_size(config['MAX_FORM_MEMORY_SIZE'])}, "
                "far more than the form accepts; it was not read.")
    if _may_carry_a_photo():
        # Only a photo can make a review that large.
        return too_large_message(current_settings().max_photo_bytes)
    return (f"What was sent is larger than {_size(request.max_content_length)}, more than "
            "this form accepts.")


def _may_carry_a_photo() -> bool:
    """A review sent as multipart: any other body has no file in it, whatever its size."""
    return request.endpoint == "reviews.create" and request.mimetype == "multipart/form-data"


def _size(limit: int) -> str:
    return do_filesizeformat(limit, binary=True)


def _value_refused(error: DataError):
    """A value PostgreSQL cannot store or compare (the forms and routes should catch these).

    Only the kind of error is logged: the value came from the visitor and is never repeated.
    """
    logger.warning("Database refused a value: %s (SQLSTATE %s)", type(error.orig).__name__,
                   getattr(error.orig, "pgcode", None))  # psycopg2's name for the SQLSTATE
    return _page(400, "Invalid value", "Something you sent cannot be stored or looked up. "
                 "Check what you entered and try again.")


def _database_error(error: DBAPIError):
    if error.connection_invalidated:
        return _database_unavailable(error)
    raise error  # a bug or a refused statement: Flask's 500 handling, with the traceback


# The log lines below name the dependency and the kind of failure (exception classes), without
# the messages or tracebacks: an outage under load would otherwise flood the log, and
# messages may name hosts and users.


def _database_unavailable(error: Exception):
    logger.error("Dependency failed: dependency=PostgreSQL kind=%s", error_kind(error))
    return _database_page()


def _storage_unavailable(error: Exception):
    logger.error("Dependency failed: dependency=Blob Storage kind=%s", _storage_kind(error))
    return _storage_page()


def _budget_ran_out(error: DependencyTimeout):
    logger.error("Dependency failed: dependency=%s kind=request budget exhausted",
                 error.dependency)
    return _storage_page() if error.dependency == "Blob Storage" else _database_page()


def _storage_kind(error: Exception) -> str:
    # azure-core keeps the transport's exception (connection refused, read timeout...).
    inner = getattr(error, "inner_exception", None)
    status = getattr(error, "status_code", None)
    kind = type(error).__name__
    if inner is not None:
        kind += f" ({type(inner).__module__}.{type(inner).__name__})"
    return kind if status is None else f"{kind} (HTTP {status})"


def _database_page():
    return _unavailable("The restaurant database is unavailable right now.")


def _storage_page():
    return _unavailable("Photo storage is unavailable right now.")


def _unavailable(cause: str):
    """A read is worth reloading; a form that was not saved is still in the browser's history."""
    if request.method in ("GET", "HEAD"):
        message = f"{cause} Please try again in a minute."
        context = {"retry_url": request.full_path.rstrip("?")}
    else:
        message = (f"{cause} What you submitted was not saved. Go back to the form with your "
                   "browser's Back button (what you typed is still there) and submit it again "
                   "in a minute.")
        context = {"form_not_saved": True}
    body, status = _page(503, "Temporarily unavailable", message, **context)
    return body, status, {"Retry-After": str(RETRY_AFTER_SECONDS)}
