"""Suomi.fi e-Identification over OpenID Connect: the relying party.

mozilla-django-oidc runs the code flow: state, nonce and PKCE (S256) in the session, the authorization request, the
callback, the ID token kept for logout. `SuomiFiBackend` overrides it where Suomi.fi needs more: the endpoints from
discovery, our client authentication, encrypted ID tokens opened with our key, the signature and the claims checked
(`iss`, `aud`, `azp`, `exp`, `iat`, `nonce`, `acr`), the userinfo answer's subject, and partners matched on the identity
code claim, never on e-mail. The module also signs request objects (RFC 9101) and checks the authorization response's
`iss` (RFC 9207). joserfc is the one JOSE library.

Every failure is one exception, `SuomiFiError`, with a `reason` code for the audit trail and the error page. Messages
never contain identity codes or URLs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import requests
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from joserfc import jwe, jwk, jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.registry import HeaderParameter
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from redis.exceptions import RedisError

from kelabooking import clock, crypto
from kelabooking.identity import normalise_identity_code
from partners import keys
from partners.models import User

logger = logging.getLogger(__name__)

# Discovery's name for each endpoint, and the setting that, when set, names it instead.
ENDPOINTS = {
    "issuer": "OIDC_OP_ISSUER",
    "authorization_endpoint": "OIDC_OP_AUTHORIZATION_ENDPOINT",
    "token_endpoint": "OIDC_OP_TOKEN_ENDPOINT",
    "jwks_uri": "OIDC_OP_JWKS_ENDPOINT",
    "userinfo_endpoint": "OIDC_OP_USER_ENDPOINT",
    "end_session_endpoint": "OIDC_OP_LOGOUT_ENDPOINT",
}
REQUIRED = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REQUEST_OBJECT_LIFETIME_SECONDS = 5 * 60
# Beside the request object too: RFC 9101 §5 asks for client_id and response_type, OpenID Connect Core §6.1 for scope.
PLAIN_BESIDE_REQUEST_OBJECT = ("client_id", "response_type", "scope")
# Encrypted tokens: key management with our RSA key (never RSA1_5; RSA-OAEP, i.e. SHA-1, only when the operator allows
# it), content encryption with an AEAD. Of these, only what the provider advertises in discovery is accepted.
JWE_ALGS = ("RSA-OAEP-256",)
JWE_ENCS = ("A256GCM", "A192GCM", "A128GCM", "A256CBC-HS512", "A192CBC-HS384", "A128CBC-HS256")
# RFC 7519 §5.3: claims a provider may copy into the JWE header (certified ones copy iss and aud). Understood (so that
# `crit` may name them), and compared with the token's own claims.
REPLICATED_CLAIMS = {
    name: HeaderParameter(name, lambda value: None) for name in ("iss", "sub", "aud", "exp", "nbf", "iat", "jti")
}
# What a failing cache raises (Django's Redis backend passes redis-py's errors through): the cache is an aid here.
CACHE_ERRORS = (RedisError, OSError)
ID_TOKEN_SESSION_KEY = "oidc_id_token"  # noqa: S105 - mozilla-django-oidc's documented session key, not a secret


class SuomiFiError(Exception):
    """Identification failed. `reason` is a short code for the audit trail and the error page."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


# --- What the provider publishes ------------------------------------------------------------------------------


def _transport() -> dict[str, Any]:
    """TLS verification and proxies as mozilla-django-oidc's own calls have them (and OIDC_TIMEOUT)."""
    return {
        "verify": import_from_settings("OIDC_VERIFY_SSL", True),
        "proxies": import_from_settings("OIDC_PROXY", None),
    }


def _cache(method: Callable[..., Any], *args: Any) -> Any:
    try:
        return method(*args)
    except CACHE_ERRORS as error:
        logger.warning("The cache cannot be read or written (%s): asking the provider directly", type(error).__name__)
        return None


def fetch_json(url: str, *, valid: Callable[[Any], bool], refresh: bool = False) -> tuple[Any, bool]:
    """A document the provider publishes (discovery, JWKS) and whether it was fetched just now. It is cached for
    OIDC_JWKS_CACHE_SECONDS; while the cache is down it is fetched for each use, so nobody is locked out."""
    key = "suomifi:document:" + hashlib.sha256(url.encode()).hexdigest()
    document = None if refresh else _cache(cache.get, key)
    if document is not None:
        return document, False
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT, **_transport())
        response.raise_for_status()
        document = response.json()
    except requests.JSONDecodeError:
        raise SuomiFiError("provider_invalid", "The provider's document is not JSON") from None
    except requests.RequestException as error:
        raise SuomiFiError("provider_unreachable", f"The provider cannot be reached ({type(error).__name__})") from None
    if not valid(document):
        raise SuomiFiError("provider_invalid", "The provider's document is malformed")
    _cache(cache.set, key, document, settings.OIDC_JWKS_CACHE_SECONDS)
    return document, True


def _is_discovery(document: Any) -> bool:
    return isinstance(document, dict) and all(
        isinstance(document.get(name, None if name in REQUIRED else ""), str) for name in ENDPOINTS
    )


def _is_jwks(document: Any) -> bool:
    return isinstance(document, dict) and isinstance(document.get("keys"), list)


def provider_config() -> dict[str, Any]:
    """The provider's metadata: the endpoints set in the settings, the rest (and what it advertises) from its discovery
    document, which is not read when the settings name every endpoint needed."""
    explicit = {name: getattr(settings, setting) for name, setting in ENDPOINTS.items() if getattr(settings, setting)}
    if all(name in explicit for name in REQUIRED):
        return explicit
    if not settings.OIDC_OP_DISCOVERY_URL:
        raise SuomiFiError("not_configured", "Set OIDC_OP_ISSUER or OIDC_OP_DISCOVERY_URL and the endpoints")
    document, _ = fetch_json(settings.OIDC_OP_DISCOVERY_URL, valid=_is_discovery)
    if explicit.get("issuer", document["issuer"]) != document["issuer"]:
        raise SuomiFiError("provider_invalid", "The discovery document names another issuer")
    return {**document, **explicit}


def _accepted(ours: tuple[str, ...], config: Mapping[str, Any], name: str) -> list[str]:
    """Our algorithms, best first, less those that discovery does not list under `name` (when it lists any)."""
    advertised = config.get(name)
    return [alg for alg in ours if not isinstance(advertised, list) or alg in advertised]


# --- Tokens from the provider ---------------------------------------------------------------------------------


def _signing_key(document: dict[str, Any], token: Any) -> jwk.Key:
    """joserfc's key callable: the published key that signed `token`. The one with its `kid`; else, when that leaves
    no doubt (OpenID Connect does not require `kid`, and joserfc's KeySet picks by `kid` only), the only usable key
    published without a `kid` or, for a token without one, at all."""
    header = token.headers()
    kid, alg = header.get("kid"), header["alg"]
    usable = [
        data
        for data in document["keys"]
        if isinstance(data, dict)
        and data.get("kty") == jws.JWSRegistry.algorithms[alg].key_type
        and data.get("use", "sig") == "sig"
        and data.get("alg", alg) == alg
    ]
    named = [data for data in usable if kid and data.get("kid") == kid]
    unnamed = [data for data in usable if not (kid and data.get("kid"))]
    if not named and len(unnamed) != 1:
        raise InvalidKeyIdError("The token's key is not published, or not told apart without a kid")
    return jwk.import_key((named or unnamed)[0])


def verify_signature(token: str, *, jwks_uri: str) -> dict[str, Any]:
    """The claims of a JWS signed with OIDC_RP_SIGN_ALGO by one of the provider's keys. When the cached keys have none
    that verifies it, they are fetched again once: they may have rotated."""
    # Headers that are not understood are ignored (RFC 7515 §4) unless they are critical; `crit` is still enforced.
    registry = jws.JWSRegistry(algorithms=[settings.OIDC_RP_SIGN_ALGO], strict_check_header=False)
    document, fresh = fetch_json(jwks_uri, valid=_is_jwks)
    while True:
        try:
            return jwt.decode(token, functools.partial(_signing_key, document), registry=registry).claims
        except InvalidKeyIdError as error:
            if fresh:
                raise SuomiFiError("invalid_token", str(error)) from None
        except BadSignatureError:
            if fresh:
                raise SuomiFiError("invalid_signature", "The token's signature does not verify") from None
        except (JoseError, TypeError, ValueError) as error:
            raise SuomiFiError("invalid_token", f"The token is invalid: {type(error).__name__}") from None
        document, fresh = fetch_json(jwks_uri, valid=_is_jwks, refresh=True)


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
    algs = _accepted(JWE_ALGS + sha1, config, f"{kind}_encryption_alg_values_supported")
    encs = _accepted(JWE_ENCS, config, f"{kind}_encryption_enc_values_supported")
    if not algs or not encs:  # never an empty list for joserfc: it would take its own, SHA-1 OAEP among them
        raise SuomiFiError("invalid_token", "The provider advertises no encryption algorithm that we accept")
    registry = jwe.JWERegistry(header_registry=REPLICATED_CLAIMS, algorithms=algs + encs, strict_check_header=False)
    try:
        opened = jwe.decrypt_compact(token, keys.encryption_key(), registry=registry)
        signed = opened.plaintext.decode("ascii")
        claims = json.loads(jws.extract_compact(signed.encode()).payload)
    except (JoseError, ValueError) as error:
        raise SuomiFiError(
            "invalid_token", f"The token cannot be opened with our key ({type(error).__name__})"
        ) from None
    for name in REPLICATED_CLAIMS.keys() & opened.protected.keys():  # RFC 7519 §5.3: the same as the token's
        copied, claim = opened.protected[name], claims.get(name) if isinstance(claims, dict) else None
        if (_as_list(copied) != _as_list(claim)) if name == "aud" else copied != claim:
            raise SuomiFiError("invalid_token", f"The encrypted token's header names another {name}")
    return signed


def verify_id_token(token: str, *, config: Mapping[str, Any], nonce: str | None) -> dict[str, Any]:
    """An ID token's claims, checked as OpenID Connect Core §3.1.3.7 asks (an encrypted one is opened before)."""
    client_id = settings.OIDC_RP_CLIENT_ID
    claims = verify_signature(token, jwks_uri=config["jwks_uri"])
    _validate_claims(
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
    if claims.get("acr") not in settings.OIDC_ACR_ALLOWED:
        raise SuomiFiError("acr_not_allowed", "The authentication level is not allowed")
    return claims


def verify_userinfo_token(token: str, *, config: Mapping[str, Any]) -> dict[str, Any]:
    """A signed (and maybe encrypted) userinfo answer: `iss` and `aud` checked when present (OIDC Core §5.3.2)."""
    claims = verify_signature(open_if_encrypted(token, config=config, kind="userinfo"), jwks_uri=config["jwks_uri"])
    _validate_claims(
        claims, iss={"value": config["issuer"]}, aud={"value": settings.OIDC_RP_CLIENT_ID}, sub={"essential": True}
    )
    return claims


def check_authorization_response_issuer(params: Mapping[str, str], *, config: Mapping[str, Any]) -> None:
    """RFC 9207: the authorization response's `iss` names the provider this login went to. It is compared whenever it
    is there (§2.4), and required when the provider says that it sends it."""
    iss = params.get("iss")
    required = config.get("authorization_response_iss_parameter_supported") is True
    if iss != config["issuer"] and (iss is not None or required):
        raise SuomiFiError("wrong_issuer", "The authorization response's iss is missing or names another issuer")


# --- Signed by us ---------------------------------------------------------------------------------------------


def _stamped(audience: str, lifetime: int) -> dict[str, Any]:
    now = _now()
    return {
        "iss": settings.OIDC_RP_CLIENT_ID,
        "aud": audience,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + lifetime,
    }


def _signed(claims: dict[str, Any], *, config: Mapping[str, Any], advertised: str, typ: str = "JWT") -> str:
    """Claims signed with our key: RS256, or the first of our RSA algorithms that discovery lists under `advertised`."""
    algs = _accepted(keys.SIGNING_ALGS, config, advertised)
    if not algs:
        raise SuomiFiError("provider_invalid", "The provider advertises no signing algorithm that our RSA key can use")
    key = keys.signing_key()
    return jwt.encode({"alg": algs[0], "kid": key.kid, "typ": typ}, claims, key, algorithms=algs[:1])


def client_assertion(*, config: Mapping[str, Any]) -> str:
    """A `private_key_jwt` client assertion (RFC 7523) for one token request."""
    claims = {"sub": settings.OIDC_RP_CLIENT_ID, **_stamped(config["token_endpoint"], 60)}
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
        """Only the provider's callback comes here with a code, its state checked by the library. The endpoints come
        from discovery, and the answer's `iss` is checked before the code is exchanged."""
        if request is None or "code" not in request.GET or "state" not in request.GET:
            return None
        self.config = provider_config()
        check_authorization_response_issuer(request.GET, config=self.config)
        self.OIDC_OP_TOKEN_ENDPOINT = self.config["token_endpoint"]
        self.OIDC_OP_USER_ENDPOINT = self.config.get("userinfo_endpoint", "")
        self.OIDC_OP_JWKS_ENDPOINT = self.config["jwks_uri"]
        return super().authenticate(request, **kwargs)

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
        try:
            response = requests.post(
                self.OIDC_OP_TOKEN_ENDPOINT, data=data, auth=auth, timeout=settings.OIDC_TIMEOUT, **_transport()
            )
            token_info = response.json() if response.status_code == 200 else {}
        except requests.JSONDecodeError:
            raise SuomiFiError("provider_invalid", "The token endpoint's answer was not JSON") from None
        except requests.RequestException as error:
            raise SuomiFiError("provider_unreachable", f"token endpoint: {type(error).__name__}") from None
        if response.status_code != 200:
            raise SuomiFiError("token_refused", f"The token endpoint answered {response.status_code}")
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
            raise SuomiFiError("provider_unreachable", f"userinfo: {type(error).__name__}") from None
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


def end_session_url(*, id_token_hint: str, post_logout_redirect_uri: str) -> str:
    """Where to send the browser to end the Suomi.fi session too; empty when the provider has no such endpoint (or
    cannot be reached: then only our session ends)."""
    try:
        endpoint = provider_config().get("end_session_endpoint")
    except SuomiFiError as error:
        logger.warning("Suomi.fi logout: %s", error)
        return ""
    if not endpoint:
        return ""
    params = {"post_logout_redirect_uri": post_logout_redirect_uri, "client_id": settings.OIDC_RP_CLIENT_ID}
    if id_token_hint:
        params["id_token_hint"] = id_token_hint
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"
