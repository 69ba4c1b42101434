from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from partners.models import AuditEvent

LOGIN_AT = "partner_login_at"
LAST_SEEN = "partner_last_seen"
# The sliding idle timer is written at most this often, so that not every request writes the session.
TOUCH_INTERVAL_SECONDS = 60


class PartnerSessionTimeoutMiddleware:
    """Ends a partner's session after 30 idle minutes (sliding) or 10 hours in all.

    An htmx request gets `HX-Redirect` (POSTs included) so the page itself moves to the notice, not a fragment.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and getattr(user, "identity_code", None):
            now = time.time()
            started = request.session.get(LOGIN_AT, now)
            last_seen = request.session.get(LAST_SEEN, now)
            if (
                now - last_seen > settings.PARTNER_IDLE_TIMEOUT_SECONDS
                or now - started > settings.PARTNER_ABSOLUTE_TIMEOUT_SECONDS
            ):
                return self._expire(request)
            if LOGIN_AT not in request.session:
                request.session[LOGIN_AT] = now
            if now - last_seen >= TOUCH_INTERVAL_SECONDS or LAST_SEEN not in request.session:
                request.session[LAST_SEEN] = now
        return self.get_response(request)

    def _expire(self, request: HttpRequest) -> HttpResponse:
        from partners.context import acting_context
        from partners.services import audit_event_record

        audit_event_record(acting=acting_context(request), action=AuditEvent.Action.SESSION_EXPIRED)
        logout(request)
        url = reverse("partners:session-expired")
        if getattr(request, "htmx", False):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = url
            return response
        return redirect(url)


STAFF_LOGIN_AT = "staff_login_at"
STAFF_LAST_SEEN = "staff_last_seen"


def staff_session_start(sender: object, request: HttpRequest, user: object, **kwargs: object) -> None:
    """user_logged_in: a staff member's session starts its timers at sign-in, however they signed in (the provider,
    a break-glass password, the demo admin's), so that the first page after it writes no session."""
    if getattr(user, "is_staff", False) and not getattr(user, "identity_code", None) and hasattr(request, "session"):
        now = time.time()
        request.session[STAFF_LOGIN_AT] = now
        request.session[STAFF_LAST_SEEN] = now


class StaffSessionTimeoutMiddleware:
    """Ends a staff member's session after STAFF_SESSION_IDLE_SECONDS idle (sliding) or STAFF_SESSION_ABSOLUTE_SECONDS
    in all, however they signed in. Two session reads a request (the user is loaded already); the idle timer is
    written at most once a minute, and the timers start at sign-in (`staff_session_start`)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and user.is_staff and not getattr(user, "identity_code", None):
            now = time.time()
            session = request.session
            started, last_seen = session.get(STAFF_LOGIN_AT), session.get(STAFF_LAST_SEEN)
            if started is None or last_seen is None:  # a session from before this rule
                session[STAFF_LOGIN_AT] = started = started or now
                session[STAFF_LAST_SEEN] = last_seen = now
            if now - started > settings.STAFF_SESSION_ABSOLUTE_SECONDS:
                return self._expire(request, "absolute")
            if now - last_seen > settings.STAFF_SESSION_IDLE_SECONDS:
                return self._expire(request, "idle")
            if now - last_seen >= TOUCH_INTERVAL_SECONDS:
                session[STAFF_LAST_SEEN] = now
        return self.get_response(request)

    def _expire(self, request: HttpRequest, reason: str) -> HttpResponse:
        from partners.staff.services import staff_session_expired_record

        staff_session_expired_record(request=request, user=request.user, reason=reason)
        logout(request)
        return redirect(f"{reverse('admin:login')}?session-expired=1")
