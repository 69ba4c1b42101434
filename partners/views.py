"""The partner's way in: Suomi.fi login, the organisation choice through Valtuudet, the terms, and logout."""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import auth, messages
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import get_language
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from partners import context, keys, suomifi, valtuudet
from partners.context import Step, requires_step
from partners.forms import TermsForm
from partners.metrics import sign_in_failed, sign_in_succeeded
from partners.middleware import LAST_SEEN, LOGIN_AT
from partners.models import AuditEvent
from partners.oidc import SuomiFiError, check_authorization_response_issuer, provider_config
from partners.services import (
    Decision,
    OrganisationDecision,
    audit_event_record,
    organisation_choose,
    valtuudet_failure_record,
)
from partners.suomifi import signed_authorization_url

logger = logging.getLogger(__name__)

LANGUAGE_KEY = "partner_language"
LOGGED_OUT_LANGUAGE_KEY = "logged_out_language"
OAUTH_ERROR_CODE = re.compile(r"[a-z_]{1,64}")
VALTUUDET_KEY = "valtuudet"


def _remember_language(request: HttpRequest) -> None:
    request.session[LANGUAGE_KEY] = get_language()


def _restore_language(request: HttpRequest) -> None:
    """The provider callbacks have no language prefix: use the language the partner started in."""
    language = request.session.get(LANGUAGE_KEY)
    if language in dict(settings.LANGUAGES):
        translation.activate(language)
        request.LANGUAGE_CODE = language


def _absolute(request: HttpRequest, url_name: str) -> str:
    return request.build_absolute_uri(reverse(url_name))


# --- Suomi.fi identification ----------------------------------------------------------------------------------


class SuomiFiLoginView(OIDCAuthenticationRequestView):
    """Starts identification. mozilla-django-oidc makes state, nonce and PKCE and keeps them in the session; this
    adds the endpoint from discovery, `acr_values` and `ui_locales`, and with OIDC_RP_REQUEST_OBJECT moves the
    request into a signed request object."""

    def get(self, request: HttpRequest) -> HttpResponse:
        try:
            config = provider_config()
            self.OIDC_OP_AUTH_ENDPOINT = config["authorization_endpoint"]
            _remember_language(request)
            response = super().get(request)
            if settings.OIDC_RP_REQUEST_OBJECT:
                response["Location"] = signed_authorization_url(response["Location"], config=config)
        except SuomiFiError as error:
            audit_event_record(
                acting=context.acting_context(request),
                action=AuditEvent.Action.LOGIN_FAILED,
                outcome=AuditEvent.Outcome.ERROR,
                details={"reason": error.reason},
            )
            logger.warning("Suomi.fi login could not start: %s", error)
            sign_in_failed(error.reason)
            return render(request, "partners/login_failed.html", {"reason": error.reason}, status=503)
        return response

    def get_extra_params(self, request: HttpRequest) -> dict[str, str]:
        params = {
            **super().get_extra_params(request),
            "acr_values": " ".join(settings.OIDC_ACR_VALUES),
            "ui_locales": get_language(),
        }
        if request.GET.get("prompt") == "login":
            params["prompt"] = "login"
        return params


class SuomiFiCallbackView(OIDCAuthenticationCallbackView):
    """Finishes identification: mozilla-django-oidc checks the answer's state and uses it up, the backend does the
    rest. Every failure is a translated page with a way to try again, and an audit event."""

    failure_reason = ""

    def get(self, request: HttpRequest) -> HttpResponse:
        _restore_language(request)
        if request.GET.get("error"):
            self.failure_reason = "cancelled"
            try:  # RFC 9207 §2.4: an error answer's `iss` too (the backend checks a code's)
                check_authorization_response_issuer(request.GET, config=provider_config())
            except SuomiFiError as error:
                self._refused(error)
        try:
            return super().get(request)
        except SuspiciousOperation:
            self.failure_reason = "state_missing"
        except SuomiFiError as error:
            self._refused(error)
        return self.login_failure()

    def _refused(self, error: SuomiFiError) -> None:
        self.failure_reason = error.reason
        logger.warning("Suomi.fi login failed: %s", error)

    @staticmethod
    def on_refused_input(request: HttpRequest) -> None:
        """The input boundary refused the callback (a control character in its parameters): still a failed
        sign-in, and on record as one. Nothing of what was sent is kept."""
        audit_event_record(
            acting=context.acting_context(request),
            action=AuditEvent.Action.LOGIN_FAILED,
            outcome=AuditEvent.Outcome.ERROR,
            details={"reason": "malformed_response"},
        )
        sign_in_failed("malformed_response")

    def login_failure(self) -> HttpResponse:
        # Without a reason the library refused the answer before the backend saw it (not a login this session
        # started: the back button, another tab, a replayed callback), or the backend found no active user.
        reason = self.failure_reason or ("invalid_response" if hasattr(self, "user") else "state_missing")
        if self.request.GET.get("error") and reason == "cancelled":
            # Only an OAuth error code (RFC 6749 §4.1.2.1: `access_denied`, …) is kept, never the provider's text:
            # whatever arrives in the address could be anything, an identity code included.
            error = self.request.GET["error"]
            details = {"reason": reason, "provider_error": error if OAUTH_ERROR_CODE.fullmatch(error) else "other"}
        else:
            details = {"reason": reason}
        audit_event_record(
            acting=context.acting_context(self.request),
            action=AuditEvent.Action.LOGIN_FAILED,
            outcome=AuditEvent.Outcome.REFUSED if reason == "cancelled" else AuditEvent.Outcome.ERROR,
            details=details,
        )
        sign_in_failed(reason)
        return render(self.request, "partners/login_failed.html", {"reason": reason}, status=400)

    def login_success(self) -> HttpResponse:
        language = self.request.session.get(LANGUAGE_KEY)
        # A new identification starts the acting context over, even for the same person (auth.login keeps the
        # session's data, and its key, when the user does not change): only this unlocks the customer of the last
        # login, under a new key (the session engine keeps a key's locked customer: partners/sessions.py).
        context.start_over(self.request)
        self.request.session.cycle_key()
        auth.login(self.request, self.user, backend="partners.suomifi.SuomiFiBackend")
        now = time.time()
        self.request.session[LOGIN_AT] = now
        self.request.session[LAST_SEEN] = now
        if language:
            self.request.session[LANGUAGE_KEY] = language
        audit_event_record(acting=context.acting_context(self.request), action=AuditEvent.Action.LOGIN)
        sign_in_succeeded()
        return HttpResponseRedirect(self.success_url)


login_view = never_cache(SuomiFiLoginView.as_view())
callback_view = never_cache(SuomiFiCallbackView.as_view())


@require_safe
def jwks_view(request: HttpRequest) -> JsonResponse:
    """The RP's public keys: Suomi.fi verifies our client assertions and request objects and encrypts ID tokens
    with them."""
    return JsonResponse(keys.public_jwks())


# --- Acting for an organisation -------------------------------------------------------------------------------


@require_safe
@requires_step(Step.AUTHENTICATED)
def work_view(request: HttpRequest) -> HttpResponse:
    """*Handle work-related matters*: the start of the organisation choice."""
    return render(request, "partners/work.html")


@require_POST
@requires_step(Step.AUTHENTICATED, before=Step.CUSTOMER_LOCKED)
def organisation_choose_view(request: HttpRequest) -> HttpResponse:
    """Register a Valtuudet session for this person and send them to choose the organisation."""
    try:
        registration = valtuudet.register_session(identity_code=request.user.identity_code)
    except valtuudet.ValtuudetError as error:
        return _valtuudet_unavailable(request, error)
    _remember_language(request)
    request.session[VALTUUDET_KEY] = {"session_id": registration.session_id}
    return redirect(
        valtuudet.selection_url(
            registration=registration,
            redirect_uri=_absolute(request, "valtuudet_callback"),
            language=get_language(),
        )
    )


def _valtuudet_unavailable(request: HttpRequest, error: valtuudet.ValtuudetError) -> HttpResponse:
    valtuudet_failure_record(acting=context.acting_context(request), error=error)
    return _refused(request, OrganisationDecision(decision=Decision.VALTUUDET_UNAVAILABLE))


# The refusal page's status for each refused organisation choice.
REFUSAL_STATUS = {
    Decision.NO_ORGANISATION_CHOSEN: 400,
    Decision.MANDATE_MISSING: 403,
    Decision.NOT_IN_REGISTRY: 403,
    Decision.VALTUUDET_UNAVAILABLE: 503,
}


def _refused(request: HttpRequest, outcome: OrganisationDecision) -> HttpResponse:
    return render(
        request,
        "partners/refusal.html",
        {"reason": outcome.decision.value, "chosen": outcome.chosen},
        status=REFUSAL_STATUS[outcome.decision],
    )


def _in_partner_language(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The provider callbacks have no language prefix: the view answers in the language the partner started in."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        _restore_language(request)
        return view(request, *args, **kwargs)

    return wrapped


@require_safe
@never_cache
@_in_partner_language
@requires_step(Step.AUTHENTICATED)
def valtuudet_callback_view(request: HttpRequest) -> HttpResponse:
    """Back from the organisation choice: check the mandate, then the registry, then go on to the terms."""
    started = request.session.get(VALTUUDET_KEY) or {}
    try:
        outcome = organisation_choose(
            acting=context.acting_context(request),
            session_id=started.get("session_id", ""),
            code="" if request.GET.get("error") else request.GET.get("code", ""),
            redirect_uri=_absolute(request, "valtuudet_callback"),
        )
    except context.CustomerLockedError as error:
        messages.error(request, error.message)
        return redirect("bookings:overview")
    if outcome.decision is not Decision.ALLOWED:
        return _refused(request, outcome)
    context.choose_organisation(request, business_id=outcome.business_id, name=outcome.name)
    return redirect("partners:terms")


# --- Terms and the customer step ------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@requires_step(Step.ORGANISATION_CHOSEN, before=Step.CUSTOMER_LOCKED)
def terms_view(request: HttpRequest) -> HttpResponse:
    form = TermsForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        context.accept_terms(request)
        audit_event_record(acting=context.acting_context(request), action=AuditEvent.Action.TERMS_ACCEPTED)
        return redirect("bookings:customer")
    return render(request, "partners/terms.html", {"form": form})


# --- Leaving ----------------------------------------------------------------------------------------------------


def _leave(request: HttpRequest) -> None:
    """Audit the logout and unregister the Valtuudet session, while the session still knows who is leaving."""
    started = request.session.get(VALTUUDET_KEY)
    acting = context.acting_context(request)
    if acting.authenticated:
        audit_event_record(acting=acting, action=AuditEvent.Action.LOGOUT)
    if started:
        try:
            valtuudet.unregister_session(session_id=started["session_id"])
        except valtuudet.ValtuudetError as error:
            logger.warning("Valtuudet session could not be unregistered: %s", error)


@never_cache
@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    """Ends our session and then the Suomi.fi session: a page whose form the browser POSTs (at once, with JavaScript)
    to the provider's end_session_endpoint (`suomifi.provider_end_session`), or our logged-out page when nobody was
    signed in or the provider has no such endpoint."""
    language = get_language()
    _leave(request)
    end_session = suomifi.provider_end_session(request) if request.user.is_authenticated else None
    auth.logout(request)
    request.session[LOGGED_OUT_LANGUAGE_KEY] = language
    if end_session is None:
        return redirect("partners:logged-out")
    return render(request, "partners/end_session.html", {"end_session": end_session})


@require_POST
def new_customer_view(request: HttpRequest) -> HttpResponse:
    """One customer per login: log out and identify again (`prompt=login`) for the next customer."""
    _leave(request)
    auth.logout(request)
    return redirect(reverse("partners:login") + "?prompt=login")


@require_safe
def logged_out_view(request: HttpRequest) -> HttpResponse:
    """Back from the provider's logout, at the one registered address: once, on to the page in the language the
    partner left in."""
    language = request.session.pop(LOGGED_OUT_LANGUAGE_KEY, None)
    if language in dict(settings.LANGUAGES) and language != get_language():
        with translation.override(language):
            return redirect("partners:logged-out")
    return render(request, "partners/logged_out.html")


@require_safe
def session_expired_view(request: HttpRequest) -> HttpResponse:
    return render(request, "partners/session_expired.html")
