from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Callable

from django.conf import settings
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.signals import got_request_exception
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve
from django.utils import translation
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _

from kelabooking.logging import request_id_var
from kelabooking.validators import has_control_characters

logger = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# What a session key can be: Django's are 32 of [a-z0-9] (`VALID_KEY_CHARS`); nothing else reaches a query.
_SESSION_KEY = re.compile(r"[0-9A-Za-z]+")


class RequestIdMiddleware:
    """Give every request an id (the proxy's X-Request-ID when it is well-formed) for logs and audit events; the log
    lines made while it is answered, and by the tasks it queues, carry it (kelabooking/logging.py)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        # Until the response is closed (request_finished: kelabooking/apps.py), so that Django's own line about the
        # response (django.request's "Not Found", logged after the middleware returned) names it too.
        request_id_var.set(request.request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class InputBoundaryMiddleware:
    """The one boundary for input that reaches no form: a path or query parameter with a control character (a NUL
    byte, say) gets the translated "bad request" page before any view or database sees it. Form fields refuse them
    with Django's own validator (`ProhibitNullCharactersValidator`), with the field's error."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = [text for key, values in request.GET.lists() for text in (key, *values)]
        if has_control_characters(request.path) or any(has_control_characters(text) for text in query):
            _tell_the_view(request)
            return render(request, "400.html", status=400)
        return self.get_response(request)


def _tell_the_view(request: HttpRequest) -> None:
    """A view whose refusals must be on record (the sign-in callback: a failed sign-in is audited) declares
    `on_refused_input(request)`; the boundary calls it for the request it refuses, instead of the view."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return
    view = getattr(match.func, "view_class", match.func)
    on_refused_input = getattr(view, "on_refused_input", None)
    if on_refused_input is not None:
        on_refused_input(request)


class NoStoreForSignedInMiddleware:
    """Pages for a signed-in user show customer, booking or registry data: no browser or proxy keeps them
    (`Cache-Control: no-store`, as `never_cache` sets it) unless the view chose its own caching."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        return response


class ResilientSessionMiddleware(SessionMiddleware):
    """Django's session middleware, except that a session cookie that no session of ours could have (a NUL in it, which
    PostgreSQL refuses in any query) is no session, and that a database error while saving the session does not turn
    a response whose work has committed (a confirmed booking, say) into a 500.

    The save is tried once more on a new connection (the old one may have been cut); if that fails too the response
    goes out without the session's change, which the next page recovers from (a confirm is found again by its
    idempotency key).
    """

    def process_request(self, request: HttpRequest) -> None:
        key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        if key is not None and not _SESSION_KEY.fullmatch(key):
            del request.COOKIES[settings.SESSION_COOKIE_NAME]
        super().process_request(request)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        # The database backend reports a failed save as UpdateError, which Django's middleware raises as
        # SessionInterrupted (a 400): that, not the DatabaseError under it, is what usually reaches us.
        try:
            return super().process_response(request, response)
        except (DatabaseError, SessionInterrupted):
            logger.warning("Saving the session failed; trying once more", exc_info=True)
            if not connection.in_atomic_block:  # a cut connection: the next query opens a new one
                connection.close()
        try:
            return super().process_response(request, response)
        except (DatabaseError, SessionInterrupted):
            logger.error("Saving the session failed twice; the response goes out without it", exc_info=True)
            return response


class HeadWithoutBodyMiddleware:
    """HEAD gets GET's status and headers, Content-Length included, and no body. Django leaves dropping the body to the
    server, and gunicorn logs a warning for each HEAD response that carries one: an uptime checker's every call.
    First in MIDDLEWARE, so that it sees the response last, after CommonMiddleware has set Content-Length."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.method == "HEAD":
            if response.streaming:
                response.streaming_content = []  # a file behind it is still closed with the response
            else:
                response.content = b""
        return response


# The database cannot be reached or dropped the connection (a failover, a restart, a cut connection): nothing this
# request did has committed (or, for a lost COMMIT, a repeat finds it by its idempotency key), so trying again helps.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5


def _note_database_unavailable(sender: object, request: HttpRequest | None = None, **kwargs: object) -> None:
    """got_request_exception, sent while the exception is being handled (wherever it arose: a view or a middleware)."""
    if request is not None and isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE):
        request.database_unavailable = True


class DatabaseUnavailableMiddleware:
    """A request that failed because the database was away gets the translated "please try again" page with 503 and
    Retry-After, never the 500 page: a balancer may retry it elsewhere, and the partner knows that trying again is
    safe. Django turns an exception into the 500 response at the depth where it arose (inside any middleware), so
    the exception is noted on the request as it is handled and the 500 replaced here, outside."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        got_request_exception.connect(_note_database_unavailable, dispatch_uid="kelabooking-database-unavailable")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 500 or not getattr(request, "database_unavailable", False):
            return response
        logger.warning("The database was unavailable: answered 503 to %s %s", request.method, request.path)
        return database_unavailable_response(request, replacing=response)


def database_unavailable_response(request: HttpRequest, *, replacing: HttpResponse | None = None) -> HttpResponse:
    """The 503 page in the language of the address (rendered without the database: no query of its own)."""
    language = translation.get_language_from_path(request.path_info) or translation.get_language()
    with translation.override(language):
        try:
            response = render(request, "503.html", {"retry_url": request.get_full_path()}, status=503)
        except Exception:  # never a 500 instead: the sentence alone
            logger.exception("Rendering the 503 page failed")
            text = _("The service is briefly unavailable")
            response = HttpResponse(f"<!DOCTYPE html><title>{text}</title><h1>{text}</h1>", status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if replacing is not None:  # the security headers the inner middleware gave the 500 response
        for header, value in replacing.items():
            if header.lower() not in {"content-type", "content-length"} and not response.has_header(header):
                response[header] = value
    add_never_cache_headers(response)
    return response
