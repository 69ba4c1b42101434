"""The OpenID provider as our relying party sees it, through joserfc, the one JOSE library:

- its metadata: the endpoints set in the settings, the rest (and the algorithms it advertises) from discovery;
- its signing keys (JWKS): the one a token names by `kid` or, where that leaves no doubt, one without;
- the tokens it sends: nested JWTs opened with our key (partners/keys.py), signatures and claims checked.

Discovery and the JWKS are cached (OIDC_JWKS_CACHE_SECONDS); while the cache is down they are fetched for each use,
with a warning in the log, so that a cache outage locks nobody out. Every failure is a `SuomiFiError`, whose `reason`
is a short code for the audit trail and the error page; its messages never contain identity codes or URLs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import requests
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from joserfc import errors, jwe, jwk, jws, jwt
from joserfc.registry import HeaderParameter
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from redis.exceptions import RedisError

from kelabooking import clock
from partners import keys

logger = logging.getLogger(__name__)

# Discovery's name for each endpoint, and the setting that names it instead when it is set.
ENDPOINTS = {
    "issuer": "OIDC_OP_ISSUER",
    "authorization_endpoint": "OIDC_OP_AUTHORIZATION_ENDPOINT",
    "token_endpoint": "OIDC_OP_TOKEN_ENDPOINT",
    "jwks_uri": "OIDC_OP_JWKS_ENDPOINT",
    "userinfo_endpoint": "OIDC_OP_USER_ENDPOINT",
    "end_session_endpoint": "OIDC_OP_LOGOUT_ENDPOINT",
}
REQUIRED = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
# Encrypted tokens: key management with our RSA key (never RSA1_5; RSA-OAEP, i.e. SHA-1, only when the operator allows
# it), content encryption with an AEAD. Of these, only what the provider advertises in discovery is accepted.
JWE_ALGS = ("RSA-OAEP-256",)
JWE_ENCS = ("A256GCM", "A192GCM", "A128GCM", "A256CBC-HS512", "A192CBC-HS384", "A128CBC-HS256")
# RFC 7519 §5.3: claims that a provider may copy into the JWE header (certified ones copy iss and aud). Understood, so
# that `crit` may name them, and compared with the token's own claims.
REPLICATED_CLAIMS = {
    name: HeaderParameter(name, lambda _: None) for name in ("iss", "sub", "aud", "exp", "nbf", "iat", "jti")
}
# What a failing cache raises (Django's Redis backend passes redis-py's errors through): the cache is an aid here.
CACHE_ERRORS = (RedisError, OSError)


class SuomiFiError(Exception):
    """Identification failed. `reason` is a short code for the audit trail and the error page."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


# --- What the provider publishes ------------------------------------------------------------------------------


def transport() -> dict[str, Any]:
    """Timeout, TLS verification and proxies as mozilla-django-oidc's own calls have them."""
    verify, proxies = import_from_settings("OIDC_VERIFY_SSL", True), import_from_settings("OIDC_PROXY", None)
    return {"timeout": settings.OIDC_TIMEOUT, "verify": verify, "proxies": proxies}


def _cache(method: Callable[..., Any], *args: Any) -> Any:
    try:
        return method(*args)
    except CACHE_ERRORS as error:
        logger.warning("The cache cannot be read or written (%s): asking the provider directly", type(error).__name__)
        return None


def _fetch_json(url: str, *, required: Mapping[str, type], refresh: bool = False) -> tuple[dict[str, Any], bool]:
    """A document the provider publishes, with the `required` members, and whether it was fetched just now."""
    key = "suomifi:document:" + hashlib.sha256(url.encode()).hexdigest()
    document = None if refresh else _cache(cache.get, key)
    if document is not None:
        return document, False
    try:
        response = requests.get(url, **transport())  # noqa: S113 - the timeout is in transport()
        response.raise_for_status()
        document = response.json()
    except requests.JSONDecodeError:
        raise SuomiFiError("provider_invalid", "The provider's document is not JSON") from None
    except requests.RequestException as error:
        raise SuomiFiError("provider_unreachable", f"The provider cannot be reached ({type(error).__name__})") from None
    if not isinstance(document, dict) or not all(isinstance(document.get(n), t) for n, t in required.items()):
        raise SuomiFiError("provider_invalid", "The provider's document lacks what it must have")
    _cache(cache.set, key, document, settings.OIDC_JWKS_CACHE_SECONDS)
    return document, True


def provider_config(prefix: str = "OIDC") -> dict[str, Any]:
    """The provider's metadata: the endpoints set in the settings, the rest from discovery, which is not read when
    the settings name every endpoint needed. `prefix` picks the client's settings: OIDC (Suomi.fi, for partners) or
    STAFF_OIDC (Kela's own provider, for staff)."""
    explicit = {
        name: getattr(settings, prefix + setting.removeprefix("OIDC"))
        for name, setting in ENDPOINTS.items()
        if getattr(settings, prefix + setting.removeprefix("OIDC"))
    }
    if all(name in explicit for name in REQUIRED):
        return explicit
    discovery_url = getattr(settings, f"{prefix}_OP_DISCOVERY_URL")
    if not discovery_url:
        raise SuomiFiError("not_configured", f"Set {prefix}_OP_ISSUER or {prefix}_OP_DISCOVERY_URL and the endpoints")
    document, _ = _fetch_json(discovery_url, required=dict.fromkeys(REQUIRED, str))
    config = {**document, **explicit}
    if config["issuer"] != document["issuer"] or not all(isinstance(config.get(n, ""), str) for n in ENDPOINTS):
        raise SuomiFiError("provider_invalid", "The discovery document names another issuer, or no URL")
    return config


def accepted_algorithms(ours: tuple[str, ...], config: Mapping[str, Any], name: str) -> list[str]:
    """Our algorithms, best first, less those that discovery does not list under `name` (when it lists any)."""
    advertised = config.get(name)
    return [alg for alg in ours if not isinstance(advertised, list) or alg in advertised]


# --- The tokens it sends --------------------------------------------------------------------------------------


def _signing_key(jwks: dict[str, Any], token: Any) -> jwk.Key:
    """joserfc's key callable: the published key that signed `token`. The one with its `kid`; else, when that leaves
    no doubt (OpenID Connect does not require `kid`; joserfc's KeySet picks by `kid` only), the only usable key
    published without a `kid` or, for a token without one, at all."""
    kid, alg = token.headers().get("kid"), token.headers()["alg"]
    key_type = jws.JWSRegistry.algorithms[alg].key_type
    usable = [
        data
        for data in jwks["keys"]
        if isinstance(data, dict)
        and (data.get("kty"), data.get("use", "sig"), data.get("alg", alg)) == (key_type, "sig", alg)
    ]
    named = [data for data in usable if kid and data.get("kid") == kid]
    unnamed = [data for data in usable if not (kid and data.get("kid"))]
    if not named and len(unnamed) != 1:
        raise errors.InvalidKeyIdError("The token's key is not published, or not told apart without a kid")
    return jwk.import_key((named or unnamed)[0])


def verify_signature(token: str, *, jwks_uri: str) -> dict[str, Any]:
    """The claims of a JWS signed with OIDC_RP_SIGN_ALGO by one of the provider's keys. When the cached keys have
    none that verifies it, they are fetched again, once: they may have rotated."""
    # Headers that are not understood are ignored (RFC 7515 §4) unless they are critical; `crit` is still enforced.
    registry = jws.JWSRegistry(algorithms=[settings.OIDC_RP_SIGN_ALGO], strict_check_header=False)
    jwks, fresh = _fetch_json(jwks_uri, required={"keys": list})
    while True:
        try:
            return jwt.decode(token, functools.partial(_signing_key, jwks), registry=registry).claims
        except errors.InvalidKeyIdError as error:
            if fresh:
                raise SuomiFiError("invalid_token", str(error)) from None
        except errors.BadSignatureError:
            if fresh:
                raise SuomiFiError("invalid_signature", "The token's signature does not verify") from None
        except (errors.JoseError, ValueError) as error:
            raise SuomiFiError("invalid_token", f"The token is invalid: {type(error).__name__}") from None
        jwks, fresh = _fetch_json(jwks_uri, required={"keys": list}, refresh=True)


def _now() -> int:
    return int(clock.now().timestamp())


def validate_claims(claims: dict[str, Any], **options: Any) -> None:
    """joserfc's claim checks (`exp`, `iat` with OIDC_CLOCK_SKEW_SECONDS), their failures as our reasons."""
    registry = jwt.JWTClaimsRegistry(now=_now, leeway=settings.OIDC_CLOCK_SKEW_SECONDS, **options)
    try:
        registry.validate(claims)
    except errors.ExpiredTokenError:
        raise SuomiFiError("expired_token", "The token has expired") from None
    except errors.MissingClaimError as error:
        raise SuomiFiError("invalid_token", f"The token lacks {error.claim}") from None
    except errors.InvalidClaimError as error:
        reason = {"iss": "wrong_issuer", "aud": "wrong_audience"}.get(error.claim, "invalid_token")
        raise SuomiFiError(reason, f"The token's {error.claim} is not accepted") from None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def open_if_encrypted(token: str, *, config: Mapping[str, Any], kind: str) -> str:
    """A nested JWT (a JWE around the signed JWS) opened with our encryption key; a JWS as it is, unless
    OIDC_RP_ID_TOKEN_ENCRYPTED requires encryption. `kind` (id_token, userinfo) names discovery's algorithm lists."""
    if token.count(".") != 4:
        if settings.OIDC_RP_ID_TOKEN_ENCRYPTED:
            raise SuomiFiError("invalid_token", "The token was expected to be encrypted")
        return token
    sha1 = ("RSA-OAEP",) if settings.OIDC_RP_JWE_ALLOW_RSA_OAEP else ()
    algs = accepted_algorithms(JWE_ALGS + sha1, config, f"{kind}_encryption_alg_values_supported")
    encs = accepted_algorithms(JWE_ENCS, config, f"{kind}_encryption_enc_values_supported")
    if not algs or not encs:  # never an empty list for joserfc: it would take its own, SHA-1 OAEP among them
        raise SuomiFiError("invalid_token", "The provider advertises no encryption algorithm that we accept")
    registry = jwe.JWERegistry(header_registry=REPLICATED_CLAIMS, algorithms=algs + encs, strict_check_header=False)
    try:
        opened = jwe.decrypt_compact(token, keys.encryption_key(), registry=registry)
        signed = opened.plaintext.decode("ascii")
        claims = json.loads(jws.extract_compact(signed.encode()).payload)
    except (errors.JoseError, ValueError) as error:
        raise SuomiFiError(
            "invalid_token", f"The token cannot be opened with our key ({type(error).__name__})"
        ) from None
    for name in REPLICATED_CLAIMS.keys() & opened.protected.keys():  # RFC 7519 §5.3: what the token says
        copied, claim = opened.protected[name], claims.get(name) if isinstance(claims, dict) else None
        if (_as_list(copied) != _as_list(claim)) if name == "aud" else copied != claim:
            raise SuomiFiError("invalid_token", f"The encrypted token's header names another {name}")
    return signed


def verify_id_token(token: str, *, config: Mapping[str, Any], nonce: str | None) -> dict[str, Any]:
    """A Suomi.fi ID token's claims, checked as OpenID Connect Core §3.1.3.7 asks (an encrypted one is opened
    before), at an allowed level of assurance."""
    claims = check_id_token(token, config=config, nonce=nonce, client_id=settings.OIDC_RP_CLIENT_ID)
    if claims.get("acr") not in settings.OIDC_ACR_ALLOWED:
        raise SuomiFiError("acr_not_allowed", "The authentication level is not allowed")
    return claims


def check_id_token(token: str, *, config: Mapping[str, Any], nonce: str | None, client_id: str) -> dict[str, Any]:
    """An ID token's claims for the client `client_id`: signed by the provider, for us, not expired, with our nonce."""
    claims = verify_signature(token, jwks_uri=config["jwks_uri"])
    validate_claims(
        claims,
        iss={"essential": True, "value": config["issuer"]},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    if (len(_as_list(claims["aud"])) > 1 or "azp" in claims) and claims.get("azp") != client_id:
        raise SuomiFiError("wrong_audience", "The ID token is authorised for another party (azp)")
    if import_from_settings("OIDC_USE_NONCE", True) and (not nonce or claims.get("nonce") != nonce):
        raise SuomiFiError("nonce_mismatch", "The ID token's nonce is not the one this login sent")
    return claims


def verify_userinfo_token(token: str, *, config: Mapping[str, Any]) -> dict[str, Any]:
    """A signed (and maybe encrypted) userinfo answer: `iss` and `aud` checked when present (OIDC Core §5.3.2)."""
    claims = verify_signature(open_if_encrypted(token, config=config, kind="userinfo"), jwks_uri=config["jwks_uri"])
    validate_claims(
        claims, iss={"value": config["issuer"]}, aud={"value": settings.OIDC_RP_CLIENT_ID}, sub={"essential": True}
    )
    return claims


def check_authorization_response_issuer(params: Mapping[str, str], *, config: Mapping[str, Any]) -> None:
    """RFC 9207: the authorization response's `iss` names the provider this login went to. It is compared whenever
    it is there (§2.4), and required when the provider says that it sends it."""
    iss = params.get("iss")
    if iss != config["issuer"] and (
        iss is not None or config.get("authorization_response_iss_parameter_supported") is True
    ):
        raise SuomiFiError("wrong_issuer", "The authorization response's iss is missing or names another issuer")


class RelyingPartyBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend as both our clients run it (partners through Suomi.fi: partners/suomifi.py; FPA
    staff through Kela's provider: partners/staff/oidc.py): only at the client's own callback, with the endpoints from
    its provider's metadata and the authorization response's `iss` checked before the code is exchanged; the token
    request's failures as `SuomiFiError`s; the userinfo answer only about the ID token's subject."""

    callback_url_setting = "OIDC_AUTHENTICATION_CALLBACK_URL"  # the setting naming this client's callback URL
    config: dict[str, Any]

    def provider(self) -> dict[str, Any]:
        """This client's provider's metadata (`provider_config` with the client's settings prefix)."""
        raise NotImplementedError

    def authenticate(self, request: Any, **kwargs: Any) -> Any:
        if request is None or "code" not in request.GET or "state" not in request.GET:
            return None
        if request.path != reverse(getattr(settings, self.callback_url_setting)):
            return None  # another client's callback: never this client's login
        self.config = self.provider()
        check_authorization_response_issuer(request.GET, config=self.config)
        self.OIDC_OP_TOKEN_ENDPOINT = self.config["token_endpoint"]
        self.OIDC_OP_USER_ENDPOINT = self.config.get("userinfo_endpoint", "")
        self.OIDC_OP_JWKS_ENDPOINT = self.config["jwks_uri"]
        return super().authenticate(request, **kwargs)

    def get_user(self, user_id: Any) -> Any:
        """The session's user while the account is active, as Django's own backends have it: an account made inactive
        in the admin (a partner who left, a staff member's access removed) acts no more from its next request, rather
        than until its session ends (mozilla-django-oidc's `get_user` does not look)."""
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None

    def token_request(self, data: dict[str, Any], *, auth: tuple[str, str] | None) -> dict[str, Any]:
        """POST the token request; the answer, which must be JSON with an ID token, or the `SuomiFiError` that says
        what went wrong (never the answer's text: it is the provider's)."""
        try:
            response = requests.post(self.OIDC_OP_TOKEN_ENDPOINT, data=data, auth=auth, **transport())  # noqa: S113
            token_info = response.json()
        except requests.JSONDecodeError:
            token_info = None
        except requests.RequestException as error:
            raise SuomiFiError("provider_unreachable", f"token endpoint: {type(error).__name__}") from None
        if response.status_code != 200:
            code = str(token_info.get("error", ""))[:64] if isinstance(token_info, dict) else ""
            raise SuomiFiError("token_refused", f"The token endpoint answered {response.status_code} {code}".strip())
        if token_info is None:
            raise SuomiFiError("provider_invalid", "The token endpoint's answer was not JSON")
        if not isinstance(token_info, dict) or not isinstance(token_info.get("id_token"), str):
            raise SuomiFiError("invalid_token", "The provider answered no ID token")
        return token_info

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The ID token's claims, completed from the userinfo endpoint when the provider has one; the ID token's own
        claims win."""
        if not self.OIDC_OP_USER_ENDPOINT:
            return payload
        try:
            userinfo = super().get_userinfo(access_token, id_token, payload)
        except requests.JSONDecodeError:
            raise SuomiFiError("provider_invalid", "The userinfo answer was not JSON") from None
        except requests.RequestException as error:
            raise SuomiFiError("provider_unreachable", f"userinfo: {type(error).__name__}") from None
        # OpenID Connect Core §5.3.2: an answer about another subject must not be used.
        if not isinstance(userinfo, dict) or userinfo.get("sub") != payload.get("sub"):
            raise SuomiFiError("invalid_token", "The userinfo answer is about another subject")
        return {**userinfo, **payload}
