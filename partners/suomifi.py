"""Suomi.fi e-Identification: mozilla-django-oidc's backend and hooks, subclassed where Suomi.fi needs more.

The library runs the code flow: state, nonce and PKCE (S256) in the session, the authorization request, the callback,
the token request's payload and the ID token kept for logout. Over what partners/oidc.py knows of the provider:
- `SuomiFiBackend` (over `oidc.RelyingPartyBackend`, shared with the staff client: the endpoints from discovery, the
  authorization response's `iss` checked (RFC 9207) before the code is exchanged, the userinfo answer only about the
  ID token's subject) authenticates us at the token endpoint (`client_secret_basic` with form-encoded credentials, or
  `private_key_jwt`), opens an encrypted ID token so that the library keeps the signed inner one, and matches
  partners on the identity code claim, never on e-mail;
- `signed_authorization_url` moves the library's authorization request into a signed request object (RFC 9101);
- `provider_end_session` ends the provider's session too (RP-Initiated Logout by POST, with `id_token_hint`).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.urls import reverse
from django.utils import translation
from joserfc import jwt

from kelabooking import clock, crypto
from kelabooking.identity import normalise_identity_code
from kelabooking.validators import has_control_characters
from partners import keys, oidc
from partners.models import User
from partners.oidc import SuomiFiError

logger = logging.getLogger(__name__)

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REQUEST_OBJECT_LIFETIME_SECONDS = 5 * 60
# Beside the request object too: RFC 9101 §5 asks for client_id and response_type, OpenID Connect Core §6.1 for scope.
PLAIN_BESIDE_REQUEST_OBJECT = ("client_id", "response_type", "scope")
ID_TOKEN_SESSION_KEY = "oidc_id_token"  # noqa: S105 - mozilla-django-oidc's documented session key, not a secret


def _stamped(audience: str, seconds: int, *, client_id: str = "") -> dict[str, Any]:
    """The registered claims of a JWT from us (the client `client_id`, by default the partners'), valid for
    `seconds`."""
    iat = int(clock.now().timestamp())
    return {
        "iss": client_id or settings.OIDC_RP_CLIENT_ID,
        "aud": audience,
        "jti": uuid.uuid4().hex,
        "iat": iat,
        "exp": iat + seconds,
    }


def _signed(claims: dict[str, Any], *, config: Mapping[str, Any], advertised: str, typ: str = "JWT") -> str:
    """Claims signed with our key: RS256, or the first of our RSA algorithms that discovery lists under `advertised`."""
    algs = oidc.accepted_algorithms(keys.SIGNING_ALGS, config, advertised)
    if not algs:
        raise SuomiFiError("provider_invalid", "The provider advertises no signing algorithm that our RSA key can use")
    key = keys.signing_key()
    return jwt.encode({"alg": algs[0], "kid": key.kid, "typ": typ}, claims, key, algorithms=algs[:1])


def client_assertion(*, config: Mapping[str, Any], client_id: str = "") -> str:
    """A `private_key_jwt` client assertion (RFC 7523) for one token request of the client `client_id` (by default
    the partners')."""
    client_id = client_id or settings.OIDC_RP_CLIENT_ID
    claims = {"sub": client_id, **_stamped(config["token_endpoint"], 60, client_id=client_id)}
    return _signed(claims, config=config, advertised="token_endpoint_auth_signing_alg_values_supported")


def signed_authorization_url(location: str, *, config: Mapping[str, Any]) -> str:
    """The authorization request mozilla-django-oidc built, its parameters moved into a request object signed with
    our key (RFC 9101, OpenID Connect Core §6.1)."""
    prefix = f"{config['authorization_endpoint']}?"
    params = dict(parse_qsl(location.removeprefix(prefix), keep_blank_values=True))
    claims = {**params, **_stamped(config["issuer"], REQUEST_OBJECT_LIFETIME_SECONDS)}
    claims["nbf"] = claims["iat"]
    advertised = "request_object_signing_alg_values_supported"
    request_object = _signed(claims, config=config, advertised=advertised, typ="oauth-authz-req+jwt")
    plain = {name: params[name] for name in PLAIN_BESIDE_REQUEST_OBJECT if name in params}
    return prefix + urlencode({**plain, "request": request_object})


def first_claim(claims: dict[str, Any], names: list[str]) -> str:
    """The first of the named claims that is text, and text a person's name or code can be: one with a control
    character (a NUL, which PostgreSQL refuses in any text) is as good as none."""
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value.strip() and not has_control_characters(value):
            return value.strip()
    return ""


class SuomiFiBackend(oidc.RelyingPartyBackend):
    """Authenticates a partner with the authorization code from Suomi.fi and finds them by identity code."""

    def provider(self) -> dict[str, Any]:
        return oidc.provider_config()

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The token request with our client authentication. An encrypted ID token comes back opened: the library
        verifies and keeps the signed inner token, which RP-Initiated Logout §2 wants as `id_token_hint`."""
        data = dict(payload)
        secret, auth = data.pop("client_secret"), None
        if settings.OIDC_RP_CLIENT_AUTH_METHOD == "private_key_jwt":
            data.update(
                client_assertion_type=CLIENT_ASSERTION_TYPE, client_assertion=client_assertion(config=self.config)
            )
        else:  # RFC 6749 §2.3.1: both parts are form-encoded before they go into the Basic header.
            auth = (quote(data.pop("client_id"), safe=""), quote(secret, safe=""))
        token_info = self.token_request(data, auth=auth)
        token_info["id_token"] = oidc.open_if_encrypted(token_info["id_token"], config=self.config, kind="id_token")
        return token_info

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """The library calls this for the ID token, with `nonce`, and for a signed userinfo answer, without."""
        if "nonce" in kwargs:
            return oidc.verify_id_token(token, config=self.config, nonce=kwargs["nonce"])
        return oidc.verify_userinfo_token(token, config=self.config)

    def identity_code(self, claims: dict[str, Any]) -> str:
        raw = first_claim(claims, settings.OIDC_CLAIM_IDENTITY_CODE)
        if not raw:
            raise SuomiFiError("missing_claim", "The personal identity code claim is missing")
        try:
            return normalise_identity_code(raw)
        except ValidationError as error:
            raise SuomiFiError("invalid_identity_code", f"The identity code is not accepted ({error.code})") from None

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        self.identity_code(claims)
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]):
        return self.UserModel.objects.with_identity_code(self.identity_code(claims))

    def create_user(self, claims: dict[str, Any]) -> User:
        user = self.UserModel(username=f"partner-{uuid.uuid4().hex[:20]}", identity_code=self.identity_code(claims))
        user.set_unusable_password()
        return self.update_user(user, claims)

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        """Names come from the population register through Suomi.fi: refreshed at every login."""
        first_name = first_claim(claims, settings.OIDC_CLAIM_GIVEN_NAME)[:150] or user.first_name
        last_name = first_claim(claims, settings.OIDC_CLAIM_FAMILY_NAME)[:150] or user.last_name
        if user.pk is None or (user.first_name, user.last_name) != (first_name, last_name):
            user.first_name, user.last_name = first_name, last_name
            user.save(update_fields=None if user.pk is None else ["first_name", "last_name"])
        return user

    def store_tokens(self, access_token: str, id_token: str) -> None:
        """The ID token, kept for logout's `id_token_hint`, carries the identity code: the session keeps it encrypted
        like every stored identity code (kelabooking/crypto.py)."""
        super().store_tokens(access_token, crypto.encrypt(id_token))


@dataclass(frozen=True)
class EndSession:
    """An RP-initiated logout request (OpenID Connect RP-Initiated Logout 1.0 §2) that the browser POSTs to the
    provider's end_session_endpoint: never as a GET, because its `id_token_hint`, the ID token, carries the partner's
    identity code, which is in no URL (DESIGN.md §4 rule 8)."""

    endpoint: str
    params: dict[str, str]


def provider_end_session(request: HttpRequest) -> EndSession | None:
    """The logout request that ends the Suomi.fi session too: the provider's end_session_endpoint with the signed ID
    token as `id_token_hint`; None when the provider has none or cannot be reached (our logged-out page then). That
    page in the default language is the one return address registered with the provider (the partner's language
    waits in the session)."""
    try:
        endpoint = oidc.provider_config().get("end_session_endpoint")
    except SuomiFiError as error:
        logger.warning("Suomi.fi logout: %s", error)
        return None
    if not endpoint:
        return None
    with translation.override(settings.LANGUAGE_CODE):
        returned = request.build_absolute_uri(reverse("partners:logged-out"))
    params = {"post_logout_redirect_uri": returned, "client_id": settings.OIDC_RP_CLIENT_ID}
    with contextlib.suppress(crypto.IdentityCodeKeyError):  # written under a key since retired: no hint then
        if stored := request.session.get(ID_TOKEN_SESSION_KEY):
            params["id_token_hint"] = crypto.decrypt(stored)
    return EndSession(endpoint=endpoint, params=params)
