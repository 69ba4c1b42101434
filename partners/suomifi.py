"""Suomi.fi e-Identification over OpenID Connect: the relying party.

mozilla-django-oidc runs the flow (state, nonce, PKCE S256, the session bookkeeping); this module adds what it
lacks for Suomi.fi:
- endpoints from discovery, and every call to the provider with a timeout;
- ID tokens verified against the provider's JWKS, cached by `kid` and refetched once on an unknown `kid`;
  `iss`, `aud` (and `azp`), `exp`, `iat`, `nonce` and an `acr` allow-list checked;
- nested (encrypted) ID tokens decrypted with the RP's key;
- client authentication by `client_secret_basic` or `private_key_jwt`;
- partners matched on the personal identity code claim, validated with python-stdnum, never on e-mail.

Every failure becomes one exception, `SuomiFiError`, with a `reason` code for the audit trail. Messages never
contain identity codes or URLs.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import jwt
import requests
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from joserfc import jwe
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from kelabooking.identity import normalise_identity_code
from partners import keys
from partners.models import User

logger = logging.getLogger(__name__)

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Key management and content encryption accepted for encrypted ID tokens (Traficom M72B brokers use RSA-OAEP).
JWE_ALGORITHMS = ["RSA-OAEP-256", "RSA-OAEP", "A256GCM", "A128GCM", "A256CBC-HS512", "A128CBC-HS256"]


class SuomiFiError(Exception):
    """Identification failed. `reason` is a short code for the audit trail and the error page."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


@dataclass(frozen=True)
class ProviderConfig:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str = ""
    end_session_endpoint: str = ""


def _get_json(url: str, *, reason: str, **kwargs: Any) -> Any:
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT, **kwargs)
        response.raise_for_status()
        return response.json()
    except requests.RequestException as error:
        raise SuomiFiError(reason, f"{reason}: {error.__class__.__name__}") from None
    except ValueError:
        raise SuomiFiError(reason, f"{reason}: the answer was not JSON") from None


def provider_config() -> ProviderConfig:
    """Endpoints from the settings, with any that are not set taken from the discovery document (cached)."""
    explicit = {
        "issuer": settings.OIDC_OP_ISSUER,
        "authorization_endpoint": settings.OIDC_OP_AUTHORIZATION_ENDPOINT,
        "token_endpoint": settings.OIDC_OP_TOKEN_ENDPOINT,
        "jwks_uri": settings.OIDC_OP_JWKS_ENDPOINT,
        "userinfo_endpoint": settings.OIDC_OP_USER_ENDPOINT,
        "end_session_endpoint": settings.OIDC_OP_LOGOUT_ENDPOINT,
    }
    required = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
    if all(explicit[name] for name in required):
        return ProviderConfig(**explicit)
    if not settings.OIDC_OP_DISCOVERY_URL:
        raise SuomiFiError("not_configured", "Set OIDC_OP_ISSUER or OIDC_OP_DISCOVERY_URL and the endpoints")
    cache_key = "suomifi:discovery:" + hashlib.sha256(settings.OIDC_OP_DISCOVERY_URL.encode()).hexdigest()
    document = cache.get(cache_key)
    if document is None:
        document = _get_json(settings.OIDC_OP_DISCOVERY_URL, reason="provider_unreachable")
        if not isinstance(document, dict) or not all(document.get(name) for name in required):
            raise SuomiFiError("provider_invalid", "The discovery document lacks required endpoints")
        cache.set(cache_key, document, settings.OIDC_JWKS_CACHE_SECONDS)
    if settings.OIDC_OP_ISSUER and document["issuer"] != settings.OIDC_OP_ISSUER:
        raise SuomiFiError("provider_invalid", "The discovery document names another issuer")
    return ProviderConfig(
        **{name: explicit[name] or document.get(name, "") for name in explicit},
    )


def _jwks(jwks_uri: str, *, refresh: bool) -> dict[str, dict]:
    """The provider's signing keys by `kid`, cached; `refresh` refetches (a new `kid` means the keys rotated)."""
    cache_key = "suomifi:jwks:" + hashlib.sha256(jwks_uri.encode()).hexdigest()
    keys_by_kid = None if refresh else cache.get(cache_key)
    if keys_by_kid is None:
        document = _get_json(jwks_uri, reason="provider_unreachable")
        try:
            keys_by_kid = {key["kid"]: key for key in document["keys"] if key.get("use", "sig") == "sig"}
        except (KeyError, TypeError):
            raise SuomiFiError("provider_invalid", "The provider's JWKS is malformed") from None
        cache.set(cache_key, keys_by_kid, settings.OIDC_JWKS_CACHE_SECONDS)
    return keys_by_kid


def signing_key(jwks_uri: str, kid: str) -> jwt.PyJWK:
    keys_by_kid = _jwks(jwks_uri, refresh=False)
    if kid not in keys_by_kid:
        keys_by_kid = _jwks(jwks_uri, refresh=True)
    if kid not in keys_by_kid:
        raise SuomiFiError("invalid_token", "The token is signed with a key the provider does not publish")
    try:
        return jwt.PyJWK(keys_by_kid[kid])
    except jwt.PyJWKError:
        raise SuomiFiError("provider_invalid", "The provider's signing key cannot be used") from None


def decrypt_if_encrypted(token: str) -> str:
    """A nested JWT (JWE around the signed JWS) is opened with the RP's encryption key."""
    if token.count(".") == 4:
        try:
            opened = jwe.decrypt_compact(token, keys.encryption_key(), algorithms=JWE_ALGORITHMS)
            return opened.plaintext.decode()
        except (JoseError, ValueError, UnicodeDecodeError):
            raise SuomiFiError("invalid_token", "The encrypted token cannot be decrypted with our key") from None
    if settings.OIDC_RP_ID_TOKEN_ENCRYPTED:
        raise SuomiFiError("invalid_token", "The token was expected to be encrypted")
    return token


def verify_id_token(token: str, *, config: ProviderConfig, nonce: str | None) -> tuple[dict[str, Any], str]:
    """Verify an ID token; returns its claims and the signed JWS (for `id_token_hint`)."""
    if not isinstance(token, str) or not token:
        raise SuomiFiError("invalid_token", "The provider returned no ID token")
    signed = decrypt_if_encrypted(token)
    try:
        header = jwt.get_unverified_header(signed)
    except jwt.PyJWTError:
        raise SuomiFiError("invalid_token", "The ID token is malformed") from None
    if header.get("alg") != settings.OIDC_RP_SIGN_ALGO or not header.get("kid"):
        raise SuomiFiError("invalid_token", "The ID token is not signed with RS256 and a key id")
    key = signing_key(config.jwks_uri, header["kid"])
    client_id = settings.OIDC_RP_CLIENT_ID
    try:
        claims = jwt.decode(
            signed,
            key=key.key,
            algorithms=[settings.OIDC_RP_SIGN_ALGO],
            audience=client_id,
            issuer=config.issuer,
            leeway=settings.OIDC_CLOCK_SKEW_SECONDS,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.InvalidAudienceError:
        raise SuomiFiError("wrong_audience", "The ID token is not for this client") from None
    except jwt.InvalidIssuerError:
        raise SuomiFiError("wrong_issuer", "The ID token comes from another issuer") from None
    except jwt.ExpiredSignatureError:
        raise SuomiFiError("expired_token", "The ID token has expired") from None
    except jwt.ImmatureSignatureError:
        raise SuomiFiError("invalid_token", "The ID token is issued in the future") from None
    except jwt.InvalidSignatureError:
        raise SuomiFiError("invalid_signature", "The ID token's signature does not verify") from None
    except jwt.PyJWTError as error:
        raise SuomiFiError("invalid_token", f"The ID token is invalid: {error.__class__.__name__}") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise SuomiFiError("wrong_audience", "The ID token has several audiences and another azp")
    if settings.OIDC_USE_NONCE and (nonce is None or claims.get("nonce") != nonce):
        raise SuomiFiError("nonce_mismatch", "The ID token's nonce is not the one this login sent")
    if claims.get("acr") not in settings.OIDC_ACR_ALLOWED:
        raise SuomiFiError("acr_not_allowed", "The authentication level is not allowed")
    return claims, signed


def first_claim(claims: dict[str, Any], names: list[str]) -> str:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def client_assertion(*, token_endpoint: str) -> str:
    """A `private_key_jwt` client assertion (RFC 7523), signed with the RP's key, for one token request."""
    now = int(time.time())
    client_id = settings.OIDC_RP_CLIENT_ID
    key = keys.signing_key()
    return jose_jwt.encode(
        {"alg": keys.SIGNING_ALG, "kid": key.kid},
        {
            "iss": client_id,
            "sub": client_id,
            "aud": token_endpoint,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + 60,
        },
        key,
    )


class SuomiFiBackend(OIDCAuthenticationBackend):
    """Authenticates a partner with the authorization code from Suomi.fi and finds them by identity code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Nothing is read here: the backend is also asked about admin password logins, where no provider is needed.
        from django.contrib.auth import get_user_model

        self.UserModel = get_user_model()
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.verified_id_token = ""

    def authenticate(self, request, **kwargs: Any) -> User | None:
        if request is None or "code" not in request.GET or "state" not in request.GET:
            return None
        self.config = provider_config()
        self.OIDC_OP_TOKEN_ENDPOINT = self.config.token_endpoint
        self.OIDC_OP_USER_ENDPOINT = self.config.userinfo_endpoint
        self.OIDC_OP_JWKS_ENDPOINT = self.config.jwks_uri
        return super().authenticate(request, **kwargs)

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        data = {key: value for key, value in payload.items() if key != "client_secret"}
        auth = None
        if settings.OIDC_RP_CLIENT_AUTH_METHOD == "private_key_jwt":
            data["client_assertion_type"] = CLIENT_ASSERTION_TYPE
            data["client_assertion"] = client_assertion(token_endpoint=self.config.token_endpoint)
        else:
            data.pop("client_id", None)
            # RFC 6749 §2.3.1: both parts are form-encoded before they go into the Basic header.
            auth = (quote(self.OIDC_RP_CLIENT_ID, safe=""), quote(self.OIDC_RP_CLIENT_SECRET, safe=""))
        try:
            response = requests.post(self.config.token_endpoint, data=data, auth=auth, timeout=settings.OIDC_TIMEOUT)
        except requests.RequestException as error:
            raise SuomiFiError("provider_unreachable", f"token endpoint: {error.__class__.__name__}") from None
        if response.status_code != 200:
            try:
                code = str(response.json().get("error", ""))[:64]
            except ValueError:
                code = ""
            raise SuomiFiError("token_refused", f"The token endpoint answered {response.status_code} {code}".strip())
        try:
            return response.json()
        except ValueError:
            raise SuomiFiError("provider_invalid", "The token endpoint's answer was not JSON") from None

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        claims, self.verified_id_token = verify_id_token(token, config=self.config, nonce=kwargs.get("nonce"))
        return claims

    def store_tokens(self, access_token: str, id_token: str) -> None:
        # The signed inner token, not the encrypted one: it goes back to the provider as `id_token_hint`.
        self.request.session["oidc_id_token"] = self.verified_id_token

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The ID token's claims, completed from the userinfo endpoint when the provider has one."""
        if not self.config.userinfo_endpoint:
            return payload
        try:
            response = requests.get(
                self.config.userinfo_endpoint,
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=settings.OIDC_TIMEOUT,
            )
            response.raise_for_status()
        except requests.RequestException as error:
            raise SuomiFiError("provider_unreachable", f"userinfo: {error.__class__.__name__}") from None
        if response.headers.get("content-type", "").lower().startswith("application/jwt"):
            userinfo = self._verify_userinfo_jwt(response.text)
        else:
            try:
                userinfo = response.json()
            except ValueError:
                raise SuomiFiError("provider_invalid", "The userinfo answer was not JSON") from None
        if not isinstance(userinfo, dict) or userinfo.get("sub") != payload.get("sub"):
            raise SuomiFiError("invalid_token", "The userinfo answer is about another subject")
        return {**userinfo, **payload}

    def _verify_userinfo_jwt(self, token: str) -> dict[str, Any]:
        signed = decrypt_if_encrypted(token)
        try:
            header = jwt.get_unverified_header(signed)
            key = signing_key(self.config.jwks_uri, header.get("kid", ""))
            return jwt.decode(
                signed,
                key=key.key,
                algorithms=[settings.OIDC_RP_SIGN_ALGO],
                audience=settings.OIDC_RP_CLIENT_ID,
                issuer=self.config.issuer,
                leeway=settings.OIDC_CLOCK_SKEW_SECONDS,
            )
        except jwt.PyJWTError:
            raise SuomiFiError("invalid_token", "The signed userinfo answer does not verify") from None

    def identity_code(self, claims: dict[str, Any]) -> str:
        raw = first_claim(claims, settings.OIDC_CLAIM_IDENTITY_CODE)
        if not raw:
            raise SuomiFiError("missing_claim", "The personal identity code claim is missing")
        try:
            return normalise_identity_code(raw)
        except ValidationError as error:
            raise SuomiFiError(
                "invalid_identity_code", f"The identity code claim is not accepted ({error.code})"
            ) from None

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        self.identity_code(claims)
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]):
        return self.UserModel.objects.filter(identity_code=self.identity_code(claims))

    def describe_user_by_claims(self, claims: dict[str, Any]) -> str:
        return "partner (identity code withheld)"

    def create_user(self, claims: dict[str, Any]) -> User:
        user = self.UserModel(
            username=f"partner-{uuid.uuid4().hex[:20]}",
            identity_code=self.identity_code(claims),
            first_name=first_claim(claims, settings.OIDC_CLAIM_GIVEN_NAME)[:150],
            last_name=first_claim(claims, settings.OIDC_CLAIM_FAMILY_NAME)[:150],
        )
        user.set_unusable_password()
        user.save()
        return user

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        """Names come from the population register through Suomi.fi: refresh them at every login."""
        first_name = first_claim(claims, settings.OIDC_CLAIM_GIVEN_NAME)[:150] or user.first_name
        last_name = first_claim(claims, settings.OIDC_CLAIM_FAMILY_NAME)[:150] or user.last_name
        if (user.first_name, user.last_name) != (first_name, last_name):
            user.first_name, user.last_name = first_name, last_name
            user.save(update_fields=["first_name", "last_name"])
        return user


def end_session_url(*, id_token_hint: str, post_logout_redirect_uri: str) -> str:
    """Where to send the browser to end the Suomi.fi session too; empty when the provider has no such endpoint."""
    try:
        endpoint = provider_config().end_session_endpoint
    except SuomiFiError:
        return ""
    if not endpoint:
        return ""
    params = {"post_logout_redirect_uri": post_logout_redirect_uri, "client_id": settings.OIDC_RP_CLIENT_ID}
    if id_token_hint:
        params["id_token_hint"] = id_token_hint
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"
