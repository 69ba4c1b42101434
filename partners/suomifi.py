"""Suomi.fi e-Identification over OpenID Connect: the relying party.

mozilla-django-oidc runs the code flow: state, nonce and PKCE (S256) in the session, the authorization request, the
token request's payload, the callback, and keeping the ID token for logout. `SuomiFiBackend` subclasses its backend
where Suomi.fi needs more, the way the library's documentation describes:
- `authenticate`: the endpoints come from the provider's discovery document;
- `get_token`: client authentication (`client_secret_basic` with form-encoded credentials, or `private_key_jwt`), and
  an encrypted ID token opened with the RP's key, so that the library verifies and keeps the signed inner token;
- `verify_token`: the signature against the provider's JWKS (`kid` optional where the key set leaves no doubt),
  `iss`, `aud` (and `azp`), `exp`, `iat`, `nonce` and an `acr` allow-list;
- `get_userinfo`: the userinfo answer must be about the ID token's subject, and completes its claims;
- `verify_claims`, `filter_users_by_claims`, `create_user`, `update_user`: partners are matched on the personal
  identity code claim, validated with python-stdnum, never on e-mail.

The module also signs request objects (RFC 9101) and checks the authorization response's `iss` (RFC 9207). joserfc is
the one JOSE library. The discovery document and the JWKS are cached; while the cache is down they are fetched for
each use, with a warning in the log, so that nobody is locked out by a cache outage.

Every failure becomes one exception, `SuomiFiError`, with a `reason` code for the audit trail and the error page.
Messages never contain identity codes or URLs.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import requests
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from joserfc import jwe, jwk, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyTypeError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import Key
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter, HeaderRegistryDict
from joserfc.util import json_b64decode
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from redis.exceptions import RedisError

from kelabooking import clock, crypto
from kelabooking.identity import normalise_identity_code
from partners import keys
from partners.models import User

logger = logging.getLogger(__name__)

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REQUEST_OBJECT_TYPE = "oauth-authz-req+jwt"  # RFC 9101 §10.8
REQUEST_OBJECT_LIFETIME_SECONDS = 5 * 60
# Sent beside the request object too: RFC 9101 §5 asks for client_id and response_type, OpenID Connect Core §6.1 for
# scope (with `openid`), so that the request is also a valid OAuth 2.0 one.
PLAIN_BESIDE_REQUEST_OBJECT = ("client_id", "response_type", "scope")

# Encrypted tokens: key management with the RP's RSA key (never RSA1_5; RSA-OAEP, i.e. SHA-1, only when the operator
# allows it), content encryption with an AEAD. Of these, only what the provider advertises in discovery is accepted.
SAFE_JWE_ALGS = ("RSA-OAEP-256",)
SHA1_JWE_ALG = "RSA-OAEP"
SAFE_JWE_ENCS = ("A256GCM", "A192GCM", "A128GCM", "A256CBC-HS512", "A192CBC-HS384", "A128CBC-HS256")

# What a failing cache raises (Django's Redis backend passes redis-py's errors through): the cache is an aid here.
CACHE_ERRORS = (RedisError, OSError)
# Where the session keeps the ID token (encrypted) for logout's id_token_hint: mozilla-django-oidc's own key.
ID_TOKEN_SESSION_KEY = "oidc_id_token"  # noqa: S105 - a session key, not a secret


def _numeric_date(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a NumericDate")


def _audience(value: Any) -> None:
    if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value))):
        raise ValueError("must be a string or a list of strings")


# RFC 7519 §5.3: registered claims that a provider may replicate into the JWE protected header (certified ones copy
# iss and aud there). They are type-checked here and compared with the token's own claims after decryption.
REPLICATED_CLAIMS: HeaderRegistryDict = {
    "iss": HeaderParameter("Issuer", "str"),
    "sub": HeaderParameter("Subject", "str"),
    "aud": HeaderParameter("Audience", _audience),
    "exp": HeaderParameter("Expiration Time", _numeric_date),
    "nbf": HeaderParameter("Not Before", _numeric_date),
    "iat": HeaderParameter("Issued At", _numeric_date),
    "jti": HeaderParameter("JWT ID", "str"),
}


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
    # The whole discovery document (empty when every endpoint is set explicitly and discovery is not read).
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def advertised(self, name: str) -> list[str] | None:
        """A list the discovery document advertises (algorithms and the like); None when it says nothing."""
        value = self.metadata.get(name)
        return [item for item in value if isinstance(item, str)] if isinstance(value, list) else None

    @property
    def sends_issuer(self) -> bool:
        """RFC 9207: the provider puts `iss` in every authorization response."""
        return self.metadata.get("authorization_response_iss_parameter_supported") is True


# --- Talking to the provider ----------------------------------------------------------------------------------


def transport_options() -> dict[str, Any]:
    """TLS verification and proxies for every call to the provider, from mozilla-django-oidc's settings (the
    library's own calls read the same ones, and OIDC_TIMEOUT)."""
    return {
        "verify": import_from_settings("OIDC_VERIFY_SSL", True),
        "proxies": import_from_settings("OIDC_PROXY", None),
    }


def _get_json(url: str, *, reason: str) -> Any:
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT, **transport_options())
        response.raise_for_status()
        return response.json()
    except requests.JSONDecodeError:
        raise SuomiFiError(reason, f"{reason}: the answer was not JSON") from None
    except requests.RequestException as error:
        raise SuomiFiError(reason, f"{reason}: {error.__class__.__name__}") from None


def _cache_key(kind: str, url: str) -> str:
    return f"suomifi:{kind}:" + hashlib.sha256(url.encode()).hexdigest()


def _cached(key: str) -> Any:
    try:
        return cache.get(key)
    except CACHE_ERRORS as error:
        logger.warning("The cache cannot be read (%s): asking the provider directly", error.__class__.__name__)
        return None


def _remember(key: str, value: Any) -> None:
    try:
        cache.set(key, value, settings.OIDC_JWKS_CACHE_SECONDS)
    except CACHE_ERRORS as error:
        logger.warning("The cache cannot be written (%s): the provider is asked again", error.__class__.__name__)


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
    cache_key = _cache_key("discovery", settings.OIDC_OP_DISCOVERY_URL)
    document = _cached(cache_key)
    if document is None:
        document = _get_json(settings.OIDC_OP_DISCOVERY_URL, reason="provider_unreachable")
        if not isinstance(document, dict) or not all(isinstance(document.get(name), str) for name in required):
            raise SuomiFiError("provider_invalid", "The discovery document lacks required endpoints")
        _remember(cache_key, document)
    if settings.OIDC_OP_ISSUER and document["issuer"] != settings.OIDC_OP_ISSUER:
        raise SuomiFiError("provider_invalid", "The discovery document names another issuer")
    endpoints = {name: explicit[name] or document.get(name) or "" for name in explicit}
    if not all(isinstance(value, str) for value in endpoints.values()):
        raise SuomiFiError("provider_invalid", "The discovery document has an endpoint that is not a URL")
    return ProviderConfig(**endpoints, metadata=document)


# --- The provider's keys and signatures -----------------------------------------------------------------------


def _provider_keys(jwks_uri: str, *, refresh: bool) -> tuple[list[Key], bool]:
    """The provider's published keys and whether they were fetched just now (cached, unless `refresh`). Imported one
    by one, not as a joserfc KeySet, which would give a key published without `kid` its thumbprint as one."""
    cache_key = _cache_key("jwks-document", jwks_uri)  # not "jwks": entries of that name hold an older format
    document = None if refresh else _cached(cache_key)
    fresh = document is None
    if fresh:
        document = _get_json(jwks_uri, reason="provider_unreachable")
    published = []
    try:
        for data in document["keys"]:
            try:
                published.append(jwk.import_key(data))
            except InvalidKeyTypeError:
                continue  # RFC 7517 §5: a key type we do not understand is ignored
    except (JoseError, KeyError, TypeError, ValueError):
        raise SuomiFiError("provider_invalid", "The provider's JWKS is malformed") from None
    if fresh:
        _remember(cache_key, document)
    return published, fresh


def _key_type(alg: str) -> str:
    return {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}.get(alg[:2], "")


def choose_signing_key(published: list[Key], *, alg: str, kid: str | None) -> Key | None:
    """The key that signed a token: the one with its `kid`; else, when that leaves no doubt (OpenID Connect does not
    require `kid`), the only signing key for `alg` published without a `kid` or, for a token without one, at all."""
    candidates = [
        key
        for key in published
        if key.key_type == _key_type(alg) and key.get("use", "sig") == "sig" and key.get("alg", alg) == alg
    ]
    if kid:
        named = [key for key in candidates if key.get("kid") == kid]
        if named:
            return named[0]
        candidates = [key for key in candidates if not key.get("kid")]
    return candidates[0] if len(candidates) == 1 else None


def _unverified(segment: str) -> dict[str, Any]:
    try:
        value = json_b64decode(segment.encode("ascii"))
    except (TypeError, ValueError):
        raise SuomiFiError("invalid_token", "The token is malformed") from None
    if not isinstance(value, dict):
        raise SuomiFiError("invalid_token", "The token is malformed")
    return value


def verify_signature(token: str, *, jwks_uri: str) -> dict[str, Any]:
    """The claims of a JWS signed with OIDC_RP_SIGN_ALGO by one of the provider's keys. An unknown `kid` refetches
    the keys once (they rotated); so does a bad signature from a key chosen without a `kid` (the only key rotated)."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise SuomiFiError("invalid_token", "The token is not a signed JWT")
    alg = settings.OIDC_RP_SIGN_ALGO
    header = _unverified(token.split(".")[0])
    if header.get("alg") != alg:
        raise SuomiFiError("invalid_token", f"The token is not signed with {alg}")
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    # Headers that are not understood are ignored (RFC 7515 §4) unless they are critical; `crit` is still enforced.
    registry = JWSRegistry(algorithms=[alg], strict_check_header=False)
    published, fresh = _provider_keys(jwks_uri, refresh=False)
    while True:
        key = choose_signing_key(published, alg=alg, kid=kid)
        if key is not None:
            try:
                return jwt.decode(token, key, registry=registry).claims
            except BadSignatureError:
                if fresh or (kid and key.get("kid") == kid):
                    raise SuomiFiError("invalid_signature", "The token's signature does not verify") from None
            except (JoseError, ValueError) as error:
                raise SuomiFiError("invalid_token", f"The token is invalid: {error.__class__.__name__}") from None
        elif fresh:
            raise SuomiFiError("invalid_token", "The token's key is not published, or not told apart without a kid")
        published, fresh = _provider_keys(jwks_uri, refresh=True)


def _now() -> int:
    return int(clock.now().timestamp())


def _validate_claims(claims: dict[str, Any], **options: Any) -> None:
    registry = jwt.JWTClaimsRegistry(now=_now, leeway=settings.OIDC_CLOCK_SKEW_SECONDS, **options)
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise SuomiFiError("expired_token", "The token has expired") from None
    except MissingClaimError as error:
        raise SuomiFiError("invalid_token", f"The token lacks {error.claim}") from None
    except InvalidClaimError as error:
        reason = {"iss": "wrong_issuer", "aud": "wrong_audience"}.get(error.claim, "invalid_token")
        raise SuomiFiError(reason, f"The token's {error.claim} is not accepted") from None


# --- Encrypted tokens -----------------------------------------------------------------------------------------


def jwe_algorithms(config: ProviderConfig, *, kind: str) -> tuple[list[str], list[str]]:
    """The `alg` and `enc` values accepted for an encrypted `kind` (id_token, userinfo): on the safe list and, when
    the provider's discovery document lists them, advertised there."""
    algs = [*SAFE_JWE_ALGS, SHA1_JWE_ALG] if settings.OIDC_RP_JWE_ALLOW_RSA_OAEP else list(SAFE_JWE_ALGS)
    encs = list(SAFE_JWE_ENCS)
    advertised_algs = config.advertised(f"{kind}_encryption_alg_values_supported")
    advertised_encs = config.advertised(f"{kind}_encryption_enc_values_supported")
    if advertised_algs is not None:
        algs = [alg for alg in algs if alg in advertised_algs]
    if advertised_encs is not None:
        encs = [enc for enc in encs if enc in advertised_encs]
    return algs, encs


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


def open_if_encrypted(token: str, *, config: ProviderConfig, kind: str) -> str:
    """A nested JWT (a JWE around the signed JWS) opened with the RP's encryption key; a JWS as it is, unless
    OIDC_RP_ID_TOKEN_ENCRYPTED requires encryption."""
    if not isinstance(token, str) or token.count(".") != 4:
        if settings.OIDC_RP_ID_TOKEN_ENCRYPTED:
            raise SuomiFiError("invalid_token", "The token was expected to be encrypted")
        return token
    algs, encs = jwe_algorithms(config, kind=kind)
    if not algs or not encs:
        # Never an empty list for joserfc: it would then take its own "recommended" algorithms, SHA-1 OAEP among them.
        raise SuomiFiError("invalid_token", "The provider advertises no encryption algorithm that we accept")
    registry = jwe.JWERegistry(header_registry=REPLICATED_CLAIMS, algorithms=[*algs, *encs], strict_check_header=False)
    try:
        opened = jwe.decrypt_compact(token, keys.encryption_key(), registry=registry)
        signed = opened.plaintext.decode("ascii")
    except (JoseError, ValueError, UnicodeDecodeError) as error:
        raise SuomiFiError(
            "invalid_token", f"The encrypted token cannot be decrypted with our key ({error.__class__.__name__})"
        ) from None
    replicated = {name: value for name, value in opened.protected.items() if name in REPLICATED_CLAIMS}
    if replicated:
        # RFC 7519 §5.3: claims copied into the header must say what the token says.
        claims = _unverified(signed.split(".")[1]) if signed.count(".") == 2 else {}
        for name, value in replicated.items():
            same = _as_list(value) == _as_list(claims.get(name)) if name == "aud" else value == claims.get(name)
            if not same:
                raise SuomiFiError("invalid_token", f"The encrypted token's header names another {name}")
    return signed


# --- ID tokens and userinfo -----------------------------------------------------------------------------------


def verify_id_token(token: str, *, config: ProviderConfig, nonce: str | None) -> dict[str, Any]:
    """An ID token's claims (OpenID Connect Core §3.1.3.7), the signature and every claim the login relies on
    checked. Encrypted tokens are opened before (`open_if_encrypted`)."""
    client_id = settings.OIDC_RP_CLIENT_ID
    claims = verify_signature(token, jwks_uri=config.jwks_uri)
    _validate_claims(
        claims,
        iss={"essential": True, "value": config.issuer},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    audiences = _as_list(claims["aud"])
    if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != client_id:
        raise SuomiFiError("wrong_audience", "The ID token is authorised for another party (azp)")
    if import_from_settings("OIDC_USE_NONCE", True) and (not nonce or claims.get("nonce") != nonce):
        raise SuomiFiError("nonce_mismatch", "The ID token's nonce is not the one this login sent")
    if claims.get("acr") not in settings.OIDC_ACR_ALLOWED:
        raise SuomiFiError("acr_not_allowed", "The authentication level is not allowed")
    return claims


def verify_userinfo_token(token: str, *, config: ProviderConfig) -> dict[str, Any]:
    """A signed (and maybe encrypted) userinfo answer: `iss` and `aud` checked when present (OIDC Core §5.3.2)."""
    claims = verify_signature(open_if_encrypted(token, config=config, kind="userinfo"), jwks_uri=config.jwks_uri)
    _validate_claims(
        claims, iss={"value": config.issuer}, aud={"value": settings.OIDC_RP_CLIENT_ID}, sub={"essential": True}
    )
    return claims


def check_authorization_response_issuer(params: Mapping[str, str], *, config: ProviderConfig) -> None:
    """RFC 9207: the authorization response's `iss` names the provider this login went to. It must be there when the
    provider says it sends it, and is compared whenever it is there (§2.4)."""
    iss = params.get("iss")
    if iss is None:
        if config.sends_issuer:
            raise SuomiFiError("wrong_issuer", "The authorization response lacks iss")
        return
    if iss != config.issuer:
        raise SuomiFiError("wrong_issuer", "The authorization response comes from another issuer")


# --- Signing as the relying party -----------------------------------------------------------------------------


def signing_alg(advertised: list[str] | None) -> str:
    """RS256, or the first of our RSA algorithms that the provider advertises."""
    if advertised is None:
        return keys.SIGNING_ALGS[0]
    for alg in keys.SIGNING_ALGS:
        if alg in advertised:
            return alg
    raise SuomiFiError("provider_invalid", "The provider advertises no signing algorithm that our RSA key can use")


def _sign(header: dict[str, str], claims: dict[str, Any], *, alg: str) -> str:
    key = keys.signing_key()
    return jwt.encode({"alg": alg, "kid": key.kid, **header}, claims, key, algorithms=[alg])


def client_assertion(*, config: ProviderConfig) -> str:
    """A `private_key_jwt` client assertion (RFC 7523), signed with the RP's key, for one token request."""
    now = _now()
    client_id = settings.OIDC_RP_CLIENT_ID
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": config.token_endpoint,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 60,
    }
    return _sign({}, claims, alg=signing_alg(config.advertised("token_endpoint_auth_signing_alg_values_supported")))


def signed_authorization_url(location: str, *, config: ProviderConfig) -> str:
    """The authorization request mozilla-django-oidc built, with its parameters moved into a request object signed
    with the RP's key (RFC 9101, OpenID Connect Core §6.1); client_id, response_type and scope stay beside it."""
    prefix = f"{config.authorization_endpoint}?"
    if not location.startswith(prefix):
        raise SuomiFiError("not_configured", "The authorization request is not for the provider's endpoint")
    params = dict(parse_qsl(location.removeprefix(prefix), keep_blank_values=True))
    now = _now()
    claims = {
        **params,
        "iss": settings.OIDC_RP_CLIENT_ID,
        "aud": config.issuer,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + REQUEST_OBJECT_LIFETIME_SECONDS,
    }
    alg = signing_alg(config.advertised("request_object_signing_alg_values_supported"))
    request_object = _sign({"typ": REQUEST_OBJECT_TYPE}, claims, alg=alg)
    plain = {name: params[name] for name in PLAIN_BESIDE_REQUEST_OBJECT if name in params}
    return prefix + urlencode({**plain, "request": request_object})


# --- The backend ----------------------------------------------------------------------------------------------


def first_claim(claims: dict[str, Any], names: list[str]) -> str:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


class SuomiFiBackend(OIDCAuthenticationBackend):
    """Authenticates a partner with the authorization code from Suomi.fi and finds them by identity code."""

    def authenticate(self, request, **kwargs: Any) -> User | None:
        """Only the provider's callback comes here with a code; the endpoints are then read from discovery (the
        library takes them from settings, where they may be empty)."""
        if request is None or "code" not in request.GET or "state" not in request.GET:
            return None
        self.config = provider_config()
        self.OIDC_OP_TOKEN_ENDPOINT = self.config.token_endpoint
        self.OIDC_OP_USER_ENDPOINT = self.config.userinfo_endpoint
        self.OIDC_OP_JWKS_ENDPOINT = self.config.jwks_uri
        return super().authenticate(request, **kwargs)

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The token request with our client authentication. The answer's ID token comes back opened when it was
        encrypted: the library verifies and keeps the signed inner token, the one that OpenID Connect RP-Initiated
        Logout §2 wants as `id_token_hint`."""
        data = {name: value for name, value in payload.items() if name != "client_secret"}
        auth = None
        if settings.OIDC_RP_CLIENT_AUTH_METHOD == "private_key_jwt":
            data["client_assertion_type"] = CLIENT_ASSERTION_TYPE
            data["client_assertion"] = client_assertion(config=self.config)
        else:
            data.pop("client_id", None)
            # RFC 6749 §2.3.1: both parts are form-encoded before they go into the Basic header.
            auth = (quote(payload["client_id"], safe=""), quote(payload["client_secret"], safe=""))
        try:
            response = requests.post(
                self.OIDC_OP_TOKEN_ENDPOINT, data=data, auth=auth, timeout=settings.OIDC_TIMEOUT, **transport_options()
            )
        except requests.RequestException as error:
            raise SuomiFiError("provider_unreachable", f"token endpoint: {error.__class__.__name__}") from None
        if response.status_code != 200:
            try:
                code = str(response.json().get("error", ""))[:64]
            except (ValueError, AttributeError):
                code = ""
            raise SuomiFiError("token_refused", f"The token endpoint answered {response.status_code} {code}".strip())
        try:
            token_info = response.json()
        except ValueError:
            raise SuomiFiError("provider_invalid", "The token endpoint's answer was not JSON") from None
        if not isinstance(token_info, dict) or not isinstance(token_info.get("id_token"), str):
            raise SuomiFiError("invalid_token", "The provider returned no ID token")
        token_info["id_token"] = open_if_encrypted(token_info["id_token"], config=self.config, kind="id_token")
        return token_info

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """The library calls this for the ID token, with `nonce`, and for a signed userinfo answer, without."""
        if "nonce" in kwargs:
            return verify_id_token(token, config=self.config, nonce=kwargs["nonce"])
        return verify_userinfo_token(token, config=self.config)

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The ID token's claims, completed from the userinfo endpoint when the provider has one."""
        if not self.OIDC_OP_USER_ENDPOINT:
            return payload
        try:
            userinfo = super().get_userinfo(access_token, id_token, payload)
        except requests.JSONDecodeError:
            raise SuomiFiError("provider_invalid", "The userinfo answer was not JSON") from None
        except requests.RequestException as error:
            raise SuomiFiError("provider_unreachable", f"userinfo: {error.__class__.__name__}") from None
        # OpenID Connect Core §5.3.2: an answer about another subject must not be used.
        if not isinstance(userinfo, dict) or userinfo.get("sub") != payload.get("sub"):
            raise SuomiFiError("invalid_token", "The userinfo answer is about another subject")
        return {**userinfo, **payload}

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
        return self.UserModel.objects.with_identity_code(self.identity_code(claims))

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

    def store_tokens(self, access_token: str, id_token: str) -> None:
        """The ID token is kept for logout's `id_token_hint`; it carries the partner's identity code, so the session
        keeps it encrypted like every stored identity code (kelabooking/crypto.py)."""
        if self.get_settings("OIDC_STORE_ACCESS_TOKEN", False):
            self.request.session["oidc_access_token"] = access_token
        if self.get_settings("OIDC_STORE_ID_TOKEN", False):
            self.request.session[ID_TOKEN_SESSION_KEY] = crypto.encrypt(id_token)

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        """Names come from the population register through Suomi.fi: refresh them at every login."""
        first_name = first_claim(claims, settings.OIDC_CLAIM_GIVEN_NAME)[:150] or user.first_name
        last_name = first_claim(claims, settings.OIDC_CLAIM_FAMILY_NAME)[:150] or user.last_name
        if (user.first_name, user.last_name) != (first_name, last_name):
            user.first_name, user.last_name = first_name, last_name
            user.save(update_fields=["first_name", "last_name"])
        return user


def end_session_url(*, id_token_hint: str, post_logout_redirect_uri: str) -> str:
    """Where to send the browser to end the Suomi.fi session too; empty when the provider has no such endpoint (or
    cannot be reached: then only our session ends)."""
    try:
        endpoint = provider_config().end_session_endpoint
    except SuomiFiError as error:
        logger.warning("Suomi.fi logout: %s", error)
        return ""
    if not endpoint:
        return ""
    params = {"post_logout_redirect_uri": post_logout_redirect_uri, "client_id": settings.OIDC_RP_CLIENT_ID}
    if id_token_hint:
        params["id_token_hint"] = id_token_hint
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"
