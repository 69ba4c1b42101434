"""Staff sign-in to the admin: the start, the provider's callback, the refusal page, and the sign-out.

mozilla-django-oidc keeps every login's state, nonce and PKCE verifier under one session key of its own, which its
views hard-code and a second client cannot change: the partners' Suomi.fi login uses it. So the staff views keep
their logins in a store of their own (STATES_KEY), and only the request and callback steps are the staff views' own
code (the library's helpers make the state, nonce and PKCE pair; its backend, subclassed, does the token exchange):
a partner's state is unknown to the staff callback and a staff member's to the partners' one. Each entry is used up
at its callback, whatever the answer, so a replayed answer finds nothing.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, auth
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.crypto import get_random_string
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST, require_safe
from mozilla_django_oidc.utils import absolutify, generate_code_challenge
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView, get_next_url

from kelabooking.ratelimit import rate_limit_count, rate_limit_reached
from partners.oidc import SuomiFiError, check_authorization_response_issuer
from partners.staff import services
from partners.staff.oidc import ID_TOKEN_SESSION_KEY, provider_config, provider_logout_url, staff_setting

logger = logging.getLogger(__name__)

STATES_KEY = "staff_logins"
NEXT_KEY = "staff_oidc_login_next"
# Logins started and not finished that one session keeps (other tabs); the oldest goes first.
MAX_STATES = 10
# The refusal page's status for each reason; any other reason is a 400.
REFUSAL_STATUS = {
    "mfa_required": 403,
    "no_staff_group": 403,
    "inactive": 403,
    "provider_unreachable": 503,
    "provider_invalid": 503,
    "not_configured": 503,
}


def refused(request: HttpRequest, reason: str, *, user=None) -> HttpResponse:
    """The translated refusal page, and the refusal in the audit trail."""
    services.staff_sign_in_refused_record(request=request, reason=reason, user=user)
    context = {**admin.site.each_context(request), "reason": reason, "title": ""}
    return render(request, "partners/staff_refused.html", context, status=REFUSAL_STATUS.get(reason, 400))


@sensitive_post_parameters()
@never_cache
def password_login_view(request: HttpRequest) -> HttpResponse:
    """The admin's sign-in page (Django's own, `admin.site.login`), with its failed password attempts limited per
    client address: after STAFF_PASSWORD_RATE_LIMIT failures in STAFF_PASSWORD_RATE_WINDOW_SECONDS an attempt is
    answered 429 without its password being tried. A sign-in that succeeds counts nothing (colleagues behind one
    address are not locked out by each other's sign-ins), and reaching the limit is one audit event, so that guessing
    is slow and what it adds to the trail is bounded."""
    limit = {"scope": "staff-password", "limit": settings.STAFF_PASSWORD_RATE_LIMIT}
    if request.method == "POST" and rate_limit_reached(request, **limit):
        minutes = -(-settings.STAFF_PASSWORD_RATE_WINDOW_SECONDS // 60)
        context = {
            **admin.site.each_context(request),
            "reason": "rate_limited",
            "minutes": minutes,
            "provider": settings.STAFF_OIDC_ENABLED,
            "back": request.get_full_path(),
            "title": "",
        }
        return render(request, "partners/staff_refused.html", context, status=429)
    response = admin.site.login(request)
    if request.method == "POST" and not request.user.is_authenticated:  # the form refused the password
        window = settings.STAFF_PASSWORD_RATE_WINDOW_SECONDS
        if rate_limit_count(request, scope=limit["scope"], window_seconds=window) == limit["limit"]:
            services.staff_sign_in_refused_record(request=request, reason="rate_limited")
    return response


class StaffLoginView(OIDCAuthenticationRequestView):
    """Starts a staff sign-in at Kela's identity provider: the library's authorization request (the STAFF_OIDC_*
    settings through `get_settings`), with state, nonce and PKCE made the library's way but kept in the staff
    store."""

    get_settings = staticmethod(staff_setting)

    def get(self, request: HttpRequest) -> HttpResponse:
        try:
            endpoint = provider_config()["authorization_endpoint"]
        except SuomiFiError as error:
            logger.warning("Staff sign-in could not start: %s", error)
            return refused(request, error.reason)
        state = get_random_string(self.get_settings("OIDC_STATE_SIZE", 32))
        nonce = get_random_string(self.get_settings("OIDC_NONCE_SIZE", 32))
        verifier = get_random_string(self.get_settings("OIDC_PKCE_CODE_VERIFIER_SIZE", 64))
        params = {
            "response_type": "code",
            "scope": settings.STAFF_OIDC_RP_SCOPES,
            "client_id": settings.STAFF_OIDC_RP_CLIENT_ID,
            "redirect_uri": absolutify(request, reverse(settings.STAFF_OIDC_AUTHENTICATION_CALLBACK_URL)),
            "state": state,
            "nonce": nonce,
            "code_challenge": generate_code_challenge(verifier, "S256"),
            "code_challenge_method": "S256",
            **self.get_extra_params(request),
        }
        states = dict(request.session.get(STATES_KEY) or {})
        states[state] = {"nonce": nonce, "code_verifier": verifier}
        request.session[STATES_KEY] = dict(list(states.items())[-MAX_STATES:])
        request.session[NEXT_KEY] = get_next_url(request, "next")
        return HttpResponseRedirect(f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}")

    def get_extra_params(self, request: HttpRequest) -> dict[str, str]:
        params = {"ui_locales": get_language()}
        if settings.STAFF_OIDC_ACR_VALUES:
            params["acr_values"] = " ".join(settings.STAFF_OIDC_ACR_VALUES)
        if request.GET.get("prompt") == "login":
            params["prompt"] = "login"
        return params


class StaffCallbackView(OIDCAuthenticationCallbackView):
    """Finishes a staff sign-in: the state from the staff store, used up first; the backend does the rest. Every
    failure is the refusal page and an audit event."""

    get_settings = staticmethod(staff_setting)

    def get(self, request: HttpRequest) -> HttpResponse:
        state = request.GET.get("state", "")
        states = dict(request.session.get(STATES_KEY) or {})
        entry = states.pop(state, None) if state else None
        if entry is not None:
            request.session[STATES_KEY] = states
            request.session.save()  # used up before the provider is asked anything: a replay finds nothing
        try:
            if request.GET.get("error"):
                check_authorization_response_issuer(request.GET, config=provider_config())
                return refused(request, "cancelled" if entry is not None else "state_missing")
            if entry is None:
                return refused(request, "state_missing")
            if "code" not in request.GET:
                return refused(request, "invalid_response")
            user = auth.authenticate(request=request, nonce=entry["nonce"], code_verifier=entry.get("code_verifier"))
        except services.StaffRefusedError as error:
            logger.info("Staff sign-in refused: %s", error.reason)
            return refused(request, error.reason, user=error.user)
        except SuomiFiError as error:
            logger.warning("Staff sign-in failed: %s", error)
            return refused(request, error.reason)
        if user is None or not user.is_active:
            return refused(request, "inactive" if user is not None else "invalid_response", user=user)
        self.user = user
        return self.login_success()

    @staticmethod
    def on_refused_input(request: HttpRequest) -> None:
        """The input boundary refused the callback (a control character): a failed sign-in, on record as one."""
        services.staff_sign_in_refused_record(request=request, reason="malformed_response")

    def login_success(self) -> HttpResponse:
        request = self.request
        next_url = request.session.get(NEXT_KEY)
        id_token = request.session.get(ID_TOKEN_SESSION_KEY)
        # A new session for the staff member (auth.login empties a session that belonged to someone else).
        auth.login(request, self.user, backend="partners.staff.oidc.StaffBackend")
        request.session[ID_TOKEN_SESSION_KEY] = id_token  # the session timers start with auth.login's signal
        request.session.pop(NEXT_KEY, None)
        services.staff_sign_in_record(request=request, user=self.user)
        safe = next_url and url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure())
        return HttpResponseRedirect(next_url if safe else reverse("admin:index"))


login_view = never_cache(StaffLoginView.as_view())
callback_view = never_cache(StaffCallbackView.as_view())


@never_cache
@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    """The admin's sign-out: audited, and, for a staff member who signed in through the provider, on to the
    provider's end_session_endpoint so that its session ends too (RP-initiated logout). Others get Django's page."""
    user = request.user
    if not user.is_authenticated:
        return admin.site.logout(request)
    services.staff_sign_out_record(request=request, user=user)
    if not request.session.get(ID_TOKEN_SESSION_KEY):
        return admin.site.logout(request)
    url = provider_logout_url(request, returned=request.build_absolute_uri(reverse("staff_logged_out")))
    auth.logout(request)
    return HttpResponseRedirect(url)


@require_safe
def logged_out_view(request: HttpRequest) -> HttpResponse:
    """Back from the provider's logout: the admin's own "logged out" page."""
    context = {**admin.site.each_context(request), "has_permission": False, "title": _("You have signed out")}
    return render(request, "registration/logged_out.html", context)
