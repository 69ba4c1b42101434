"""The sandbox's views: thin wrappers around partners.sandbox.oidc (the OP) and partners.sandbox.valtuudet.

Protocol endpoints answer JSON; the two pages a person sees (the test identifier page and the organisation choice)
are ordinary Django forms, CSRF-protected, in the language the relying party asked for (`ui_locales` or `lang`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import secrets
from collections.abc import Callable, Iterator
from functools import wraps
from urllib.parse import quote

from authlib.integrations.django_oauth2.resource_protector import return_error_response
from authlib.oauth2 import OAuth2Error
from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from stdnum.fi import hetu

from kelabooking.identity import is_test_identity_code
from partners.sandbox import oidc, staff, valtuudet
from partners.sandbox.people import PEOPLE, Person, person_for

PAGE_LANGUAGES = ("fi", "sv", "en")


# --- Page helpers ---------------------------------------------------------------------------------------------


def _page_language(requested: str) -> str | None:
    """The first of fi, sv and en in a space-separated preference list (`ui_locales`, `lang`), if any."""
    for tag in requested.split():
        code = tag.split("-")[0].lower()
        if code in PAGE_LANGUAGES:
            return code
    return None


@contextlib.contextmanager
def _language(*requested: str) -> Iterator[str | None]:
    """The page in the first of the preference lists that names fi, sv or en."""
    language = next((found for found in map(_page_language, requested) if found), None)
    if language is None:
        yield None
    else:
        with translation.override(language):
            yield language


def _language_links(request: HttpRequest, parameter: str) -> list[dict[str, object]]:
    """The header's language links for a sandbox page: the same request with another `ui_locales` or `lang`."""
    current = translation.get_language()
    links = []
    for code, name in settings.LANGUAGES:
        query = request.GET.copy()
        query[parameter] = code
        links.append(
            {"code": code, "name": name, "url": f"{request.path}?{query.urlencode()}", "current": code == current}
        )
    return links


def _page(
    request: HttpRequest, template: str, context: dict[str, object], *, parameter: str | None = None, status: int = 200
) -> HttpResponse:
    if parameter:
        context = {**context, "language_links": _language_links(request, parameter)}
    response = render(request, template, context, status=status)
    response["Content-Language"] = translation.get_language()
    return response


def _error_page(request: HttpRequest, *, error: str, description: str, parameter: str) -> HttpResponse:
    context = {"error": error, "description": description}
    return _page(request, "sandbox/error.html", context, parameter=parameter, status=400)


def _json_error(status: int, error: str, description: str) -> JsonResponse:
    return JsonResponse({"error": error, "error_description": description}, status=status)


# --- Forms ----------------------------------------------------------------------------------------------------


def _person_label(person: Person) -> str:
    if person.organisations:
        incomplete = " (" + gettext("incomplete") + ")"
        organisations = "; ".join(
            f"{org.name} ({org.business_id}): {', '.join(org.roles)}" + ("" if org.complete else incomplete)
            for org in person.organisations
        )
    else:
        organisations = gettext("no organisations")
    return f"{person.full_name}, {person.identity_code} – {organisations}"


class TestIdentifierForm(forms.Form):
    person = forms.ChoiceField(label=_("Test person"), required=False, widget=forms.RadioSelect)
    identity_code = forms.CharField(
        label=_("Or type a test personal identity code"),
        help_text=_("A temporary identity code, with an individual number from 900 to 999, such as 010594Y9032."),
        required=False,
        max_length=11,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"}),
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["person"].choices = [(person.identity_code, _person_label(person)) for person in PEOPLE]

    def clean_identity_code(self) -> str:
        value = self.cleaned_data["identity_code"].upper()
        if not value or is_test_identity_code(value):
            return value
        if hetu.is_valid(value):
            raise forms.ValidationError(
                _("Only temporary test identity codes (individual number 900–999) work in the sandbox."),
                code="not_temporary",
            )
        raise forms.ValidationError(_("Enter a valid personal identity code, such as 010594Y9032."), code="invalid")

    def clean(self) -> dict[str, object]:
        cleaned = super().clean()
        chosen, typed = cleaned.get("person"), cleaned.get("identity_code")
        if "identity_code" in self.errors:
            return cleaned
        if chosen and typed:
            self.add_error("identity_code", _("Choose a test person or type an identity code, not both."))
        elif not chosen and not typed:
            self.add_error("person", _("Choose a test person or type a test personal identity code."))
        return cleaned

    def chosen_person(self) -> Person:
        return person_for(self.cleaned_data["person"] or self.cleaned_data["identity_code"])


class OrganisationChoiceForm(forms.Form):
    organisation = forms.ChoiceField(label=_("Organisation"), widget=forms.RadioSelect)

    def __init__(self, person: Person, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organisation"].choices = [
            (org.business_id, f"{org.name} ({org.business_id})") for org in person.organisations
        ]
        self.fields["organisation"].error_messages["required"] = _("Choose the organisation you act for.")


# --- OpenID provider ------------------------------------------------------------------------------------------


@require_safe
def oidc_discovery_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(oidc.discovery_document())


@require_safe
def oidc_jwks_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(oidc.op_jwks())


def _oidc_error(request: HttpRequest, server: oidc.SandboxAuthorizationServer, error: OAuth2Error) -> HttpResponse:
    """Back to the RP, with `iss`, when its redirect_uri is known to be good (RFC 6749 §4.1.2.1); otherwise a page."""
    if error.redirect_uri:
        return oidc.with_issuer(server.handle_response(*error()))
    return _error_page(request, error=error.error, description=error.description or "", parameter="ui_locales")


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def oidc_authorize_view(request: HttpRequest) -> HttpResponse:
    """The authorization request; the test identifier page; its answer redirects back with a code (or an error).

    The page's language is the request's `ui_locales`, from the request object when there is one; a plain
    `ui_locales` (the page's own language links add one) comes first."""
    server = oidc.authorization_server(request)
    try:
        grant = server.get_consent_grant(request)
    except OAuth2Error as error:
        with _language(request.GET.get("ui_locales", "")):
            return _oidc_error(request, server, error)
    with _language(request.GET.get("ui_locales", ""), grant.request.payload.data.get("ui_locales", "")):
        form = TestIdentifierForm(request.POST if request.method == "POST" else None)
        if request.method == "POST":
            if request.POST.get("action") == "cancel":
                return server.create_authorization_response(request, grant_user=None, grant=grant)
            if form.is_valid():
                return server.create_authorization_response(request, grant_user=form.chosen_person(), grant=grant)
        context = {"form": form, "client_id": settings.OIDC_RP_CLIENT_ID}
        return _page(request, "sandbox/identify.html", context, parameter="ui_locales")


@csrf_exempt
@require_POST
def oidc_token_view(request: HttpRequest) -> HttpResponse:
    return oidc.authorization_server(request).create_token_response(request)


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def oidc_userinfo_view(request: HttpRequest) -> HttpResponse:
    try:
        claims = oidc.userinfo_for(request)
    except OAuth2Error as error:
        return return_error_response(error)
    response = JsonResponse(claims)
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def oidc_logout_view(request: HttpRequest) -> HttpResponse:
    """RP-initiated logout: back to post_logout_redirect_uri (same host) with state, or a "logged out" page."""
    params = request.POST if request.method == "POST" else request.GET
    hint = params.get("id_token_hint", "")
    redirect_uri = params.get("post_logout_redirect_uri", "")
    state = params.get("state", "")
    with _language(params.get("ui_locales", "")):
        hint_refused = bool(hint) and not oidc.id_token_hint_valid(hint)
        if redirect_uri and not hint_refused and oidc.same_host_uri(redirect_uri, host=request.get_host()):
            return HttpResponseRedirect(oidc.uri_with_params(redirect_uri, {"state": state} if state else {}))
        context = {"hint_refused": hint_refused, "redirect_refused": bool(redirect_uri)}
        return _page(request, "sandbox/logged_out.html", context, parameter="ui_locales")


# --- The staff mode: Kela's identity provider for FPA staff ---------------------------------------------------


class StaffIdentifierForm(forms.Form):
    person = forms.ChoiceField(label=_("Test staff member"), widget=forms.RadioSelect)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["person"].choices = [(person.username, _staff_label(person)) for person in staff.STAFF_PEOPLE]
        self.fields["person"].error_messages["required"] = _("Choose a test staff member.")

    def chosen_person(self) -> staff.StaffPerson:
        return staff.staff_person(self.cleaned_data["person"])


def _staff_label(person: staff.StaffPerson) -> str:
    groups = ", ".join(person.groups)
    factor = gettext("with multi-factor authentication") if person.mfa else gettext("password only, no MFA")
    return f"{person.full_name} ({person.username}) – {groups}; {factor}"


@require_safe
def staff_discovery_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(staff.discovery_document())


@require_safe
def staff_jwks_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(staff.op_jwks())


@never_cache
@require_http_methods(["GET", "POST"])
def staff_authorize_view(request: HttpRequest) -> HttpResponse:
    """The staff authorization request; the test sign-in page; back to the admin with a code (or an error)."""
    server = staff.authorization_server(request)
    try:
        grant = server.get_consent_grant(request)
    except OAuth2Error as error:
        with _language(request.GET.get("ui_locales", "")):
            if error.redirect_uri:
                return staff.with_issuer(server.handle_response(*error()))
            description = error.description or ""
            return _error_page(request, error=error.error, description=description, parameter="ui_locales")
    with _language(request.GET.get("ui_locales", "")):
        form = StaffIdentifierForm(request.POST if request.method == "POST" else None)
        if request.method == "POST":
            if request.POST.get("action") == "cancel":
                return server.create_authorization_response(request, grant_user=None, grant=grant)
            if form.is_valid():
                return server.create_authorization_response(request, grant_user=form.chosen_person(), grant=grant)
        context = {"form": form, "client_id": settings.STAFF_OIDC_RP_CLIENT_ID}
        return _page(request, "sandbox/staff_identify.html", context, parameter="ui_locales")


@csrf_exempt
@require_POST
def staff_token_view(request: HttpRequest) -> HttpResponse:
    return staff.authorization_server(request).create_token_response(request)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def staff_userinfo_view(request: HttpRequest) -> HttpResponse:
    try:
        claims = staff.userinfo_for(request)
    except OAuth2Error as error:
        return return_error_response(error)
    response = JsonResponse(claims)
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def staff_logout_view(request: HttpRequest) -> HttpResponse:
    """RP-initiated logout from the staff provider: back to post_logout_redirect_uri (same host), or a page."""
    params = request.GET if request.method == "GET" else request.POST
    hint = params.get("id_token_hint", "")
    redirect_uri = params.get("post_logout_redirect_uri", "")
    with _language(params.get("ui_locales", "")):
        hint_refused = bool(hint) and not staff.id_token_hint_valid(hint)
        if redirect_uri and not hint_refused and oidc.same_host_uri(redirect_uri, host=request.get_host()):
            state = params.get("state", "")
            return HttpResponseRedirect(oidc.uri_with_params(redirect_uri, {"state": state} if state else {}))
        context = {"hint_refused": hint_refused, "redirect_refused": bool(redirect_uri)}
        return _page(request, "sandbox/logged_out.html", context, parameter="ui_locales")


# --- Valtuudet ------------------------------------------------------------------------------------------------


def _valtuudet_signed_paths(request: HttpRequest) -> list[str]:
    """The signed part of the request, its path below the Valtuudet mount point with the query string, in each
    spelling a client may have sent: the raw request line when the server keeps it (gunicorn, uWSGI), else the path
    as Django escapes it and with every reserved character escaped (a client quoting `+` as `%2B`)."""
    mount = reverse("sandbox:valtuudet-authorize").removesuffix("/oauth/authorize")
    query = request.META.get("QUERY_STRING", "")
    suffix = f"?{query}" if query else ""
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI") or ""
    spellings = [raw if raw.startswith("/") else "", request.get_full_path(), quote(request.path, safe="/") + suffix]
    paths = [spelling.removeprefix(mount) for spelling in spellings if spelling.startswith(mount)]
    return list(dict.fromkeys(paths))


def _checksum_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Refuse (401) a service call without a good X-AsiointivaltuudetAuthorization header."""

    @wraps(view)
    def checked(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        try:
            valtuudet.verify_request_header(
                request.headers.get(valtuudet.HEADER), paths=_valtuudet_signed_paths(request)
            )
        except valtuudet.ChecksumError as error:
            return _json_error(401, "unauthorized", error.reason)
        return view(request, *args, **kwargs)

    return checked


@csrf_exempt
@require_safe
@_checksum_required
def valtuudet_register_view(request: HttpRequest, client_id: str, identity_code: str) -> JsonResponse:
    if not secrets.compare_digest(client_id, settings.VALTUUDET_CLIENT_ID):
        return _json_error(401, "unauthorized", "unknown client id in the path")
    if not is_test_identity_code(identity_code):
        return _json_error(400, "invalid_request", "not a temporary test personal identity code")
    return JsonResponse(valtuudet.session_register(identity_code=identity_code))


def _valtuudet_authorize_problem(params: QueryDict, *, host: str) -> str | None:
    if params.get("client_id") != settings.VALTUUDET_CLIENT_ID:
        return "Unknown client_id."
    if params.get("response_type") != "code":
        return "response_type must be 'code'."
    if not oidc.same_host_uri(params.get("redirect_uri", ""), host=host, path=valtuudet.CALLBACK_PATH):
        return f"redirect_uri must be an absolute URL on {host} with the path {valtuudet.CALLBACK_PATH}."
    if not valtuudet.session_for_user(params.get("user", "")):
        return "Unknown or expired user: register the session first."
    return None


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def valtuudet_authorize_view(request: HttpRequest) -> HttpResponse:
    """The organisation choice: Choose redirects back with a code, Cancel with error=access_denied."""
    params = request.GET
    with _language(params.get("lang", "")):
        problem = _valtuudet_authorize_problem(params, host=request.get_host())
        if problem:
            return _error_page(request, error="invalid_request", description=problem, parameter="lang")
        session_id = valtuudet.session_for_user(params["user"])
        person = valtuudet.session_person(session_id)
        redirect_uri = params["redirect_uri"]
        extra = {"state": params["state"]} if params.get("state") else {}
        form = OrganisationChoiceForm(person, request.POST if request.method == "POST" else None)
        if request.method == "POST":
            if request.POST.get("action") == "cancel" or not person.organisations:
                return HttpResponseRedirect(oidc.uri_with_params(redirect_uri, {"error": "access_denied", **extra}))
            if form.is_valid():
                code = valtuudet.code_issue(
                    session_id=session_id, business_id=form.cleaned_data["organisation"], redirect_uri=redirect_uri
                )
                return HttpResponseRedirect(oidc.uri_with_params(redirect_uri, {"code": code, **extra}))
        context = {"form": form, "person": person}
        return _page(request, "sandbox/organisation.html", context, parameter="lang")


def _basic_credentials(request: HttpRequest) -> tuple[str, str]:
    kind, _space, encoded = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() != "basic":
        return "", ""
    try:
        user, _colon, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user, password


@csrf_exempt
@require_POST
def valtuudet_token_view(request: HttpRequest) -> JsonResponse:
    """The code exchange, HTTP Basic clientId:OAuthPassword; parameters in the query string (or the form)."""

    def param(name: str) -> str:
        return request.GET.get(name) or request.POST.get(name, "")

    user, password = _basic_credentials(request)
    if not (
        secrets.compare_digest(user, settings.VALTUUDET_CLIENT_ID)
        and settings.VALTUUDET_OAUTH_PASSWORD
        and secrets.compare_digest(password, settings.VALTUUDET_OAUTH_PASSWORD)
    ):
        response = _json_error(401, "invalid_client", "wrong client id or OAuth password")
        response["WWW-Authenticate"] = 'Basic realm="valtuudet"'
        return response
    if param("grant_type") != "authorization_code":
        return _json_error(400, "unsupported_grant_type", "grant_type must be authorization_code")
    token = valtuudet.code_redeem(param("code"), redirect_uri=param("redirect_uri"))
    if token is None:
        return _json_error(400, "invalid_grant", "unknown, used or expired code, or another redirect_uri")
    response = JsonResponse(token)
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@require_safe
@_checksum_required
def valtuudet_organization_roles_view(request: HttpRequest, session_id: str) -> JsonResponse:
    kind, _space, access_token = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() != "bearer" or not access_token:
        return _json_error(401, "invalid_token", "missing Bearer token")
    roles = valtuudet.organisation_roles(session_id=session_id, access_token=access_token)
    if roles is None:
        return _json_error(401, "invalid_token", "unknown or expired token or session")
    return JsonResponse(roles, safe=False)


@csrf_exempt
@require_safe
@_checksum_required
def valtuudet_unregister_view(request: HttpRequest, session_id: str) -> HttpResponse:
    valtuudet.session_unregister(session_id)
    return HttpResponse(status=200)
