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

from django.conf import settings
from django.http import HttpRequest
from mozilla_django_oidc.utils import import_from_settings

from kelabooking.validators import has_control_characters
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


class StaffBackend(oidc.RelyingPartyBackend):
    """Authenticates FPA staff with the authorization code from Kela's identity provider."""

    get_settings = staticmethod(staff_setting)
    callback_url_setting = "STAFF_OIDC_AUTHENTICATION_CALLBACK_URL"

    def provider(self) -> dict[str, Any]:
        return provider_config()

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
        return self.token_request(data, auth=auth)

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

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> User:
        """MFA first, then the groups: a refusal is a `StaffRefusedError` with the user it concerns, if known."""
        claims = self.get_userinfo(access_token, id_token, payload)
        if not isinstance(claims.get("sub"), str) or not claims["sub"] or has_control_characters(claims["sub"]):
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
