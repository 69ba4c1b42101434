"""The staff client of Kela's identity provider: mozilla-django-oidc's backend with the STAFF_OIDC_* settings.

The library runs the code flow (state, nonce and PKCE S256, the token request, the ID token kept for logout). Over
it, as for the partners' Suomi.fi client and with the same protocol code (partners/oidc.py):
- the endpoints come from the staff provider's discovery, and the authorization response's `iss` is checked;
- the ID token is checked for this client (`iss`, `aud`, signature by a published key, expiry, nonce);
- we authenticate by client secret (Basic or form) or `private_key_jwt`;
- multi-factor authentication is required: `amr` or `acr` must show it (STAFF_OIDC_MFA_AMR, STAFF_OIDC_MFA_ACR);
- the staff member is found by their subject at the provider, never by e-mail, and their groups come from the
  groups claim at every sign-in (partners/staff/services.py).
The backend answers only on the staff callback: a Suomi.fi login never reaches it, nor a staff login the Suomi.fi one.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, urlencode

import requests
from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings

from partners import oidc
from partners.models import User
from partners.oidc import SuomiFiError
from partners.staff import services
from partners.suomifi import CLIENT_ASSERTION_TYPE, client_assertion

logger = logging.getLogger(__name__)

PREFIX = "STAFF_OIDC"
ID_TOKEN_SESSION_KEY = "staff_oidc_id_token"  # noqa: S105 - a session key, not a secret
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")


def staff_setting(attr: str, *args: Any) -> Any:
    """mozilla-django-oidc's `get_settings` for the staff client: STAFF_OIDC_X where the library reads OIDC_X, when
    the settings define it; the library's own setting otherwise (timeouts, TLS verification, the signing algorithm)."""
    if attr.startswith("OIDC_") and hasattr(settings, f"STAFF_{attr}"):
        return getattr(settings, f"STAFF_{attr}")
    return import_from_settings(attr, *args)


def provider_config() -> dict[str, Any]:
    return oidc.provider_config(PREFIX)


def mfa_shown(claims: dict[str, Any]) -> bool:
    """Whether the ID token says that the staff member signed in with more than one factor: an `amr` value in
    STAFF_OIDC_MFA_AMR, or the `acr` in STAFF_OIDC_MFA_ACR."""
    amr = claims.get("amr")
    methods = amr if isinstance(amr, list) else [amr] if isinstance(amr, str) else []
    if any(method in settings.STAFF_OIDC_MFA_AMR for method in methods if isinstance(method, str)):
        return True
    return isinstance(claims.get("acr"), str) and claims["acr"] in settings.STAFF_OIDC_MFA_ACR


class StaffBackend(OIDCAuthenticationBackend):
    """Authenticates FPA staff with the authorization code from Kela's identity provider."""

    get_settings = staticmethod(staff_setting)

    def authenticate(self, request, **kwargs: Any) -> User | None:
        if request is None or "code" not in request.GET or "state" not in request.GET:
            return None
        if request.path != reverse(settings.STAFF_OIDC_AUTHENTICATION_CALLBACK_URL):
            return None  # the partners' Suomi.fi callback, or any other: never a staff login
        self.config = provider_config()
        oidc.check_authorization_response_issuer(request.GET, config=self.config)
        self.OIDC_OP_TOKEN_ENDPOINT = self.config["token_endpoint"]
        self.OIDC_OP_USER_ENDPOINT = self.config.get("userinfo_endpoint", "")
        self.OIDC_OP_JWKS_ENDPOINT = self.config["jwks_uri"]
        return super().authenticate(request, **kwargs)

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        data = dict(payload)
        secret, auth = data.pop("client_secret"), None
        method = settings.STAFF_OIDC_RP_CLIENT_AUTH_METHOD
        if method == "private_key_jwt":
            assertion = client_assertion(config=self.config, client_id=settings.STAFF_OIDC_RP_CLIENT_ID)
            data.update(client_assertion_type=CLIENT_ASSERTION_TYPE, client_assertion=assertion)
        elif method == "client_secret_post":
            data["client_secret"] = secret
        else:  # client_secret_basic: RFC 6749 §2.3.1, both parts form-encoded before they go into the header
            auth = (quote(data.pop("client_id"), safe=""), quote(secret, safe=""))
        try:
            response = requests.post(self.OIDC_OP_TOKEN_ENDPOINT, data=data, auth=auth, **oidc.transport())  # noqa: S113
            token_info = response.json()
        except requests.JSONDecodeError:
            token_info = None
        except requests.RequestException as error:
            raise SuomiFiError("provider_unreachable", f"token endpoint: {type(error).__name__}") from None
        if response.status_code != 200:
            code = str(token_info.get("error", ""))[:64] if isinstance(token_info, dict) else ""
            raise SuomiFiError("token_refused", f"The token endpoint answered {response.status_code} {code}".strip())
        if not isinstance(token_info, dict) or not isinstance(token_info.get("id_token"), str):
            raise SuomiFiError("invalid_token", "The provider answered no ID token")
        return token_info

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """The ID token (with `nonce`), or a signed userinfo answer (without)."""
        client_id = settings.STAFF_OIDC_RP_CLIENT_ID
        if "nonce" in kwargs:
            return oidc.check_id_token(token, config=self.config, nonce=kwargs["nonce"], client_id=client_id)
        claims = oidc.verify_signature(token, jwks_uri=self.config["jwks_uri"])
        oidc.validate_claims(
            claims, iss={"value": self.config["issuer"]}, aud={"value": client_id}, sub={"essential": True}
        )
        return claims

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The ID token's claims, completed from the userinfo endpoint when there is one; the ID token's own claims
        (`amr`, `acr`, the groups it carries) win."""
        if not self.OIDC_OP_USER_ENDPOINT:
            return payload
        try:
            userinfo = super().get_userinfo(access_token, id_token, payload)
        except requests.JSONDecodeError:
            raise SuomiFiError("provider_invalid", "The userinfo answer was not JSON") from None
        except requests.RequestException as error:
            raise SuomiFiError("provider_unreachable", f"userinfo: {type(error).__name__}") from None
        if not isinstance(userinfo, dict) or userinfo.get("sub") != payload.get("sub"):
            raise SuomiFiError("invalid_token", "The userinfo answer is about another subject")
        return {**userinfo, **payload}

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> User:
        """MFA first, then the groups: a refusal is a `StaffRefusedError` with the user it concerns, if known."""
        claims = self.get_userinfo(access_token, id_token, payload)
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise SuomiFiError("invalid_token", "The ID token has no subject")
        if not mfa_shown(claims):
            raise services.StaffRefusedError("mfa_required", user=services.staff_user_by_subject(claims["sub"]))
        user = services.staff_user_sync(claims=claims)
        if user is None:
            raise services.StaffRefusedError("no_staff_group", user=services.staff_user_by_subject(claims["sub"]))
        return user

    def store_tokens(self, access_token: str, id_token: str) -> None:
        """Under the staff client's own session key (the library's would be the partners' one)."""
        self.request.session[ID_TOKEN_SESSION_KEY] = id_token


def provider_logout_url(request: HttpRequest, *, returned: str) -> str:
    """RP-initiated logout: the staff provider's end_session_endpoint with `id_token_hint` (when this session signed
    in through it), `client_id` and `post_logout_redirect_uri`; `returned` itself when the provider has none."""
    try:
        endpoint = provider_config().get("end_session_endpoint")
    except SuomiFiError as error:
        logger.warning("Staff logout: %s", error)
        return returned
    if not endpoint:
        return returned
    params = {"post_logout_redirect_uri": returned, "client_id": settings.STAFF_OIDC_RP_CLIENT_ID}
    if hint := request.session.get(ID_TOKEN_SESSION_KEY):
        params["id_token_hint"] = hint
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"
