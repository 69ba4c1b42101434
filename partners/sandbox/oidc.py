"""The sandbox OpenID provider: the local stand-in for Suomi.fi e-Identification, built on Authlib.

It serves one client, settings.OIDC_RP_CLIENT_ID, under settings.OIDC_OP_ISSUER (`/sandbox/oidc`): discovery, JWKS,
authorize (the code flow with PKCE S256 and a nonce, both required), token, userinfo and end_session (logout).
Authorization codes (single use, 5 minutes) and access tokens live in Django's cache; the sandbox has no models.

What certified providers do, it does too:
- every authorization response, errors included, carries `iss` (RFC 9207, advertised in discovery);
- signed request objects (`request=`, RFC 9101) are accepted, verified against the RP's published JWKS, and required
  when OIDC_RP_REQUEST_OBJECT is on (`require_signed_request_object`); they must carry `iss` (the client), `aud`
  (the issuer) and `exp`;
- ID tokens are RS256 with a `kid`, signed with the OP key generated once under OIDC_RP_KEY_DIR. With
  OIDC_RP_ID_TOKEN_ENCRYPTED on they are nested: the signed JWT encrypted (RSA-OAEP-256, A256GCM, cty JWT) to the
  RP's `use: enc` key, with `iss` and `aud` replicated into the JWE header (RFC 7519 §5.3).
`private_key_jwt` assertions and request objects are checked against the RP's JWKS, fetched fresh on each use by
`fetch_rp_jwks()` (SUOMIFI_SANDBOX_RP_JWKS_URL points it elsewhere).

Any parameter value gets an OAuth error (or the sandbox's error page), never a server error: Authlib repeats some
values in its error descriptions and refuses to build one with characters such as `ä`, `"` or `\\`, so the grant
below words those errors without the value.

Sandbox leniencies, where a real client registration would be stricter:
- a redirect_uri is accepted when it is absolute (http or https), its host:port equals the host of the request that
  reached the sandbox, and its path is exactly the RP's callback `/oidc/callback/` (no query, no fragment); a
  post_logout_redirect_uri needs only the same scheme rules and host, any path;
- the OP runs on plain HTTP (Authlib is told the request came over HTTPS; see `_SandboxOAuth2Request`);
- there is no single sign-on session: every authorization request shows the test identifier page again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from authlib.integrations.django_oauth2.requests import DjangoJsonRequest, DjangoOAuth2Payload
from authlib.integrations.django_oauth2.resource_protector import ResourceProtector
from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    TokenMixin,
    UnsupportedResponseTypeError,
    grants,
)
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9101 import JWTAuthenticationRequest
from authlib.oauth2.rfc9101.errors import InvalidRequestObjectError
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core import OpenIDCode
from authlib.oidc.core.grants.util import is_openid_scope
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from joserfc import jwe, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from joserfc.registry import HeaderParameter

from kelabooking import clock
from partners.keys import load_or_generate_rsa_key, with_use
from partners.sandbox.people import Person, person_for

CALLBACK_PATH = "/oidc/callback/"
CODE_LIFETIME_SECONDS = 5 * 60
ACCESS_TOKEN_LIFETIME_SECONDS = 10 * 60
ID_TOKEN_LIFETIME_SECONDS = 10 * 60
# Long enough to outlive every ID token that carried the nonce.
NONCE_MEMORY_SECONDS = 60 * 60
ASSERTION_JTI_MEMORY_SECONDS = 10 * 60

SIGNING_ALG = "RS256"
REQUEST_OBJECT_ALGS = ["RS256", "PS256"]
ENCRYPTION_ALG = "RSA-OAEP-256"
ENCRYPTION_ENC = "A256GCM"
# Claims copied into the JWE protected header of an encrypted ID token, as certified providers do (RFC 7519 §5.3).
JWE_REPLICATED_CLAIMS = {"iss": HeaderParameter("Issuer", "str"), "aud": HeaderParameter("Audience", "str")}
# The authorization request's parameters that must be strings (in a request object, any JSON could arrive).
STRING_PARAMETERS = (
    "client_id",
    "response_type",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "acr_values",
    "ui_locales",
    "prompt",
)
LOA3 = "http://ftn.ficora.fi/2017/loa3"
LOA2 = "http://ftn.ficora.fi/2017/loa2"
ACR_VALUES_SUPPORTED = [LOA3, LOA2]
IDENTITY_CODE_CLAIM = "urn:oid:1.2.246.21"
SCOPES_SUPPORTED = ["openid", "profile"]
AUTH_METHODS_SUPPORTED = ["client_secret_basic", "private_key_jwt"]
CLAIMS_SUPPORTED = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    IDENTITY_CODE_CLAIM,
    "given_name",
    "family_name",
]


# --- Endpoints and keys ---------------------------------------------------------------------------------------


def issuer() -> str:
    return settings.OIDC_OP_ISSUER.rstrip("/")


def endpoint_url(name: str) -> str:
    """An OP endpoint's absolute URL; `name` is its path under the issuer (authorize, token, userinfo, jwks, logout)."""
    return f"{issuer()}/{name}"


@functools.lru_cache(maxsize=4)
def _signing_key(key_dir: str) -> RSAKey:
    # key_dir is the cache key only: load_or_generate_rsa_key reads OIDC_RP_KEY_DIR itself.
    key = load_or_generate_rsa_key("", generated_name="sandbox-op-signing.pem")
    return with_use(key, use="sig", alg=SIGNING_ALG)


def op_signing_key() -> RSAKey:
    """The OP's private signing key (generated once under OIDC_RP_KEY_DIR, so a changed directory gets its own)."""
    return _signing_key(str(settings.OIDC_RP_KEY_DIR))


def op_jwks() -> dict[str, Any]:
    return KeySet([op_signing_key()]).as_dict(private=False)


def discovery_document() -> dict[str, Any]:
    return {
        "issuer": issuer(),
        "authorization_endpoint": endpoint_url("authorize"),
        "token_endpoint": endpoint_url("token"),
        "userinfo_endpoint": endpoint_url("userinfo"),
        "jwks_uri": endpoint_url("jwks"),
        "end_session_endpoint": endpoint_url("logout"),
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS_SUPPORTED,
        "token_endpoint_auth_signing_alg_values_supported": [SIGNING_ALG],
        "id_token_signing_alg_values_supported": [SIGNING_ALG],
        "id_token_encryption_alg_values_supported": [ENCRYPTION_ALG],
        "id_token_encryption_enc_values_supported": [ENCRYPTION_ENC],
        "acr_values_supported": ACR_VALUES_SUPPORTED,
        "claims_supported": CLAIMS_SUPPORTED,
        "ui_locales_supported": ["fi", "sv", "en"],
        "claims_parameter_supported": False,
        "request_parameter_supported": True,
        "request_uri_parameter_supported": False,
        "request_object_signing_alg_values_supported": REQUEST_OBJECT_ALGS,
        "require_signed_request_object": bool(settings.OIDC_RP_REQUEST_OBJECT),
        "authorization_response_iss_parameter_supported": True,
    }


class RpJwksError(Exception):
    """The relying party's JWKS could not be fetched or read."""


def rp_jwks_url() -> str:
    return (
        getattr(settings, "SUOMIFI_SANDBOX_RP_JWKS_URL", "")
        or f"{settings.SUOMIFI_SANDBOX_BASE_URL}/.well-known/jwks.json"
    )


def fetch_rp_jwks() -> KeySet:
    """The RP's public keys, fetched fresh each time so a key rotation shows at once."""
    try:
        response = requests.get(rp_jwks_url(), timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        return KeySet.import_key_set(response.json())
    except (requests.RequestException, ValueError, JoseError) as error:
        raise RpJwksError(f"Could not fetch the client's JWKS from {rp_jwks_url()}: {error}") from error


def _rp_keys(use: str) -> KeySet:
    keys = [key for key in fetch_rp_jwks().keys if key.get("use", use) == use and isinstance(key, RSAKey)]
    return KeySet(keys)


# --- The redirect rule ----------------------------------------------------------------------------------------


def same_host_uri(uri: str, *, host: str, path: str | None = None) -> bool:
    """An absolute http(s) URI on `host` (host:port, as the request carried it), with exactly `path` when given."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    if parts.scheme not in {"http", "https"} or parts.fragment or parts.username or parts.password:
        return False
    if parts.netloc.lower() != host.lower():
        return False
    return path is None or (parts.path == path and not parts.query)


def uri_with_params(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def choose_acr(acr_values: str) -> str:
    """The first supported value the RP asked for, else high (loa3): asking for nothing we know is no error."""
    for value in acr_values.split():
        if value in ACR_VALUES_SUPPORTED:
            return value
    return LOA3


def userinfo_claims(person: Person) -> dict[str, str]:
    return {
        "sub": person.subject,
        IDENTITY_CODE_CLAIM: person.identity_code,
        "given_name": person.given_name,
        "family_name": person.family_name,
    }


def _now() -> int:
    return int(clock.now().timestamp())


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _code_key(code: str) -> str:
    return f"sandbox:oidc:code:{_digest(code)}"


def _used_code_key(code: str) -> str:
    return f"sandbox:oidc:used-code:{_digest(code)}"


def _token_key(access_token: str) -> str:
    return f"sandbox:oidc:token:{_digest(access_token)}"


def _nonce_key(client_id: str, nonce: str) -> str:
    return f"sandbox:oidc:nonce:{_digest(f'{client_id} {nonce}')}"


def _person_data(person: Person) -> dict[str, str]:
    return {"identity_code": person.identity_code, "given_name": person.given_name, "family_name": person.family_name}


def _person(data: dict[str, str]) -> Person:
    listed = person_for(data["identity_code"])
    return Person(data["identity_code"], data["given_name"], data["family_name"], listed.organisations)


# --- Authlib models -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxClient(ClientMixin):
    """The one registered client, as settings describe it; redirect URIs follow the same-host rule."""

    client_id: str
    client_secret: str
    auth_method: str
    host: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(item for item in (scope or "").split() if item in SCOPES_SUPPORTED)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return same_host_uri(redirect_uri, host=self.host, path=CALLBACK_PATH)

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(self.client_secret) and secrets.compare_digest(self.client_secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method if endpoint == "token" else True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass(frozen=True)
class AuthorizationCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str
    code_challenge: str
    code_challenge_method: str
    auth_time: int
    acr: str
    person: dict[str, str]

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str:
        return self.acr

    def get_amr(self) -> None:
        return None


@dataclass(frozen=True)
class AccessToken(TokenMixin):
    client_id: str
    scope: str
    person: dict[str, str]

    def check_client(self, client: ClientMixin) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return ACCESS_TOKEN_LIFETIME_SECONDS

    def is_expired(self) -> bool:
        return False  # the cache forgets it when it expires

    def is_revoked(self) -> bool:
        return False


# --- Authlib grant and extensions -----------------------------------------------------------------------------


class _AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    @property
    def TOKEN_ENDPOINT_AUTH_METHODS(self) -> list[str]:  # noqa: N802 - Authlib's attribute name
        # Exactly the configured method, like a real client registration.
        return [settings.OIDC_RP_CLIENT_AUTH_METHOD]

    @classmethod
    def check_authorization_endpoint(cls, request: OAuth2Request) -> bool:
        """Every authorization request comes to this grant, so that an unsupported response_type is answered here:
        Authlib's server would put the value in its error description, and fail on one it cannot put there."""
        return True

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuth2Request, client: ClientMixin) -> str:
        if request.payload.redirect_uri and not client.check_redirect_uri(request.payload.redirect_uri):
            raise InvalidRequestError("The redirect_uri is not registered for this client.")
        return grants.AuthorizationCodeGrant.validate_authorization_redirect_uri(request, client)

    def _redirect_uri_for_errors(self) -> str | None:
        """The request's redirect_uri when it may receive an error (RFC 6749 §4.1.2.1): a known client's, registered."""
        payload = self.request.payload
        client = self.server.query_client(payload.client_id)
        uri = payload.redirect_uri
        return uri if client is not None and uri and client.check_redirect_uri(uri) else None

    def validate_authorization_request(self) -> str:
        if self.request.payload.response_type != "code":
            raise UnsupportedResponseTypeError(
                self.request.payload.response_type,
                "Only response_type 'code' is supported.",
                redirect_uri=self._redirect_uri_for_errors(),
            )
        redirect_uri = super().validate_authorization_request()
        if not is_openid_scope(self.request.payload.scope):
            raise InvalidScopeError("The scope must contain 'openid'.", redirect_uri=redirect_uri)
        return redirect_uri

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        payload = request.payload.data
        client_id = request.client.get_client_id()
        data = {
            "client_id": client_id,
            "redirect_uri": request.payload.redirect_uri,
            "scope": request.scope,
            "nonce": payload.get("nonce", ""),
            "code_challenge": payload.get("code_challenge", ""),
            "code_challenge_method": payload.get("code_challenge_method", ""),
            "auth_time": _now(),
            "acr": choose_acr(payload.get("acr_values", "")),
            "person": _person_data(request.user),
        }
        cache.set(_code_key(code), data, CODE_LIFETIME_SECONDS)
        cache.set(_nonce_key(client_id, data["nonce"]), True, NONCE_MEMORY_SECONDS)

    def query_authorization_code(self, code: str, client: ClientMixin) -> AuthorizationCode | None:
        """Take the code out of the cache: single use, even when the rest of the request then fails."""
        key = _code_key(code)
        data = cache.get(key)
        if data is None or not cache.delete(key):
            # A code presented again: revoke what it was exchanged for (RFC 6749 §4.1.2).
            used = cache.get(_used_code_key(code))
            if used:
                cache.delete(used)
            return None
        cache.set(_used_code_key(code), "", CODE_LIFETIME_SECONDS * 2)
        if data["client_id"] != client.get_client_id():
            return None
        return AuthorizationCode(code=code, **data)

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Already gone from the cache (see query_authorization_code)."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Person:
        return _person(authorization_code.person)


class _RequireS256(CodeChallenge):
    """PKCE with S256 on every authorization request: no challenge, or `plain`, is refused."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: grants.AuthorizationCodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE is required with code_challenge_method=S256.")
        super().validate_code_challenge(grant, redirect_uri)


class _OpenIDCode(OpenIDCode):
    def __init__(self) -> None:
        super().__init__(require_nonce=True)

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return cache.get(_nonce_key(request.payload.client_id or "", nonce)) is not None

    def resolve_client_private_key(self, client: ClientMixin) -> RSAKey:
        return op_signing_key()

    def get_client_algorithm(self, client: ClientMixin) -> str:
        return SIGNING_ALG

    def get_encode_header(self, client: ClientMixin) -> dict[str, str]:
        return {"alg": SIGNING_ALG, "kid": op_signing_key().kid, "typ": "JWT"}

    def get_client_claims(self, client: ClientMixin) -> dict[str, Any]:
        now = _now()
        return {"iss": issuer(), "aud": client.get_client_id(), "iat": now, "exp": now + ID_TOKEN_LIFETIME_SECONDS}

    def generate_user_info(self, user: Person, scope: str) -> dict[str, str]:
        return userinfo_claims(user)

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        signed = super().encode_id_token(token, request)
        if not settings.OIDC_RP_ID_TOKEN_ENCRYPTED:
            return signed
        return encrypt_for_rp(signed, client_id=request.client.get_client_id())


def encrypt_for_rp(signed_jwt: str, *, client_id: str) -> str:
    """The nested JWT: the signed ID token encrypted to the RP's `use: enc` key, `iss` and `aud` in its header."""
    try:
        keys = _rp_keys("enc").keys
    except RpJwksError as error:
        raise InvalidClientError(description=_ascii(str(error))) from error
    if not keys:
        raise InvalidClientError(description="The client's JWKS has no RSA key with use 'enc'.")
    key = keys[0]
    header = {"alg": ENCRYPTION_ALG, "enc": ENCRYPTION_ENC, "cty": "JWT", "iss": issuer(), "aud": client_id}
    if key.kid:
        header["kid"] = key.kid
    registry = jwe.JWERegistry(header_registry=JWE_REPLICATED_CLAIMS, algorithms=[ENCRYPTION_ALG, ENCRYPTION_ENC])
    return jwe.encrypt_compact(header, signed_jwt, key, registry=registry)


class _PrivateKeyJwt(JWTBearerClientAssertion):
    """`private_key_jwt`: an assertion signed with a key from the RP's published JWKS (RFC 7523)."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def get_audiences(self) -> list[str]:
        return [endpoint_url("token"), issuer()]

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        key = "sandbox:oidc:jti:" + _digest(f"{claims['sub']} {jti}")
        return cache.add(key, True, ASSERTION_JTI_MEMORY_SECONDS)

    def resolve_client_public_key(self, client: ClientMixin) -> KeySet:
        return rp_signing_keys()


def rp_signing_keys() -> KeySet:
    """The RP's published signing keys, for its client assertions and request objects."""
    try:
        keys = _rp_keys("sig")
    except RpJwksError as error:
        raise InvalidClientError(description=_ascii(str(error))) from error
    if not keys.keys:
        raise InvalidClientError(description="The client's JWKS has no RSA key with use 'sig'.")
    return keys


class _RequestObject(JWTAuthenticationRequest):
    """Signed request objects (RFC 9101) by value, verified with the RP's published signing keys; required when
    OIDC_RP_REQUEST_OBJECT is on. Their claims replace the query's parameters (§6.3)."""

    def __init__(self) -> None:
        super().__init__(support_request=True, support_request_uri=False)

    @property
    def claims_validator(self) -> jwt.JWTClaimsRegistry:
        # Stricter than RFC 9101 requires (iss, aud and exp are only recommended there): the RP sends all three.
        return jwt.JWTClaimsRegistry(
            now=_now,
            leeway=60,
            client_id={"essential": True},
            iss={"essential": True, "value": settings.OIDC_RP_CLIENT_ID},
            aud={"essential": True, "value": issuer()},
            exp={"essential": True},
        )

    def parse_authorization_request(self, authorization_server: AuthorizationServer, request: OAuth2Request) -> None:
        state = request.payload.state
        try:
            super().parse_authorization_request(authorization_server, request)
        except (ValueError, TypeError) as error:
            # joserfc answers some malformed compact strings with ValueError rather than its own errors.
            raise InvalidRequestObjectError(state=state) from error
        for name in STRING_PARAMETERS:
            if not isinstance(request.payload.data.get(name, ""), str):
                raise InvalidRequestObjectError(f"The request object's '{name}' is not a string.", state=state)

    def resolve_client_public_key(self, client: ClientMixin) -> KeySet:
        return rp_signing_keys()

    def get_server_metadata(self) -> dict[str, Any]:
        return discovery_document()

    def get_client_require_signed_request_object(self, client: ClientMixin) -> bool:
        return bool(settings.OIDC_RP_REQUEST_OBJECT)


class _IssuerParameter(IssuerParameter):
    """RFC 9207 on every authorization response. Authlib's extension reads `response.location`; Django's responses
    carry a Location header instead."""

    def get_issuer(self) -> str:
        return issuer()

    def add_issuer_parameter(self, authorization_server: AuthorizationServer, response: HttpResponse) -> None:
        with_issuer(response)


def with_issuer(response: HttpResponse) -> HttpResponse:
    """An authorization response (a redirect back to the client) with `iss` added (RFC 9207 §2)."""
    if response.has_header("Location"):
        response["Location"] = uri_with_params(response["Location"], {"iss": issuer()})
    return response


def _ascii(text: str) -> str:
    """An error_description may hold printable ASCII only, without quotes or backslashes (RFC 6749 §5.2)."""
    return "".join(char for char in text if " " <= char <= "~" and char not in '"\\')


# --- The server -----------------------------------------------------------------------------------------------


class _SandboxOAuth2Request(OAuth2Request):
    """Authlib's Django request, minus its HTTPS check.

    Authlib refuses a plain-HTTP request URI (other than loopback) unless AUTHLIB_INSECURE_TRANSPORT is set for the
    whole process, which would also relax the relying party's own Authlib calls. The sandbox is plain HTTP by design
    and Authlib reads the URI for nothing else here, so it is handed the https form of the URI.
    """

    def __init__(self, request: HttpRequest) -> None:
        uri = urlsplit(request.build_absolute_uri())._replace(scheme="https").geturl()
        super().__init__(method=request.method, uri=uri, headers=request.headers)
        self.payload = DjangoOAuth2Payload(request)
        self._request = request

    @property
    def args(self) -> Any:
        return self._request.GET

    @property
    def form(self) -> Any:
        return self._request.POST


class SandboxAuthorizationServer(AuthorizationServer):
    """Authlib's authorization server with the sandbox's one client, Django responses and cache storage."""

    def __init__(self, *, host: str) -> None:
        super().__init__()
        self.host = host
        self.register_token_generator("default", self._generate_token)
        self.register_grant(_AuthorizationCodeGrant, [_RequireS256(required=True), _OpenIDCode()])
        self.register_client_auth_method(_PrivateKeyJwt.CLIENT_AUTH_METHOD, _PrivateKeyJwt())
        self.register_extension(_RequestObject())
        self.register_extension(_IssuerParameter())

    def query_client(self, client_id: str | None) -> SandboxClient | None:
        if not client_id or client_id != settings.OIDC_RP_CLIENT_ID:
            return None
        return SandboxClient(
            client_id=settings.OIDC_RP_CLIENT_ID,
            client_secret=settings.OIDC_RP_CLIENT_SECRET,
            auth_method=settings.OIDC_RP_CLIENT_AUTH_METHOD,
            host=self.host,
        )

    @staticmethod
    def _generate_token(*, grant_type: str, client: SandboxClient, scope: str | None = None, **kwargs: Any) -> dict:
        token = {
            "access_token": secrets.token_urlsafe(32),
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_LIFETIME_SECONDS,
        }
        if scope:
            token["scope"] = scope
        return token

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        key = _token_key(token["access_token"])
        data = {
            "client_id": request.client.get_client_id(),
            "scope": token.get("scope", ""),
            "person": _person_data(request.user),
        }
        cache.set(key, data, ACCESS_TOKEN_LIFETIME_SECONDS)
        if request.authorization_code is not None:
            cache.set(_used_code_key(request.authorization_code.code), key, CODE_LIFETIME_SECONDS * 2)

    def create_oauth2_request(self, request: HttpRequest) -> OAuth2Request:
        return _SandboxOAuth2Request(request)

    def create_json_request(self, request: HttpRequest) -> DjangoJsonRequest:
        return DjangoJsonRequest(request)

    def handle_response(self, status_code: int, payload: Any, headers: list[tuple[str, str]]) -> HttpResponse:
        body = json.dumps(payload) if isinstance(payload, dict) else payload
        response = HttpResponse(body, status=status_code)
        for name, value in headers:
            response[name] = value
        return response

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signals: nothing in the project listens to the sandbox."""


def authorization_server(request: HttpRequest) -> SandboxAuthorizationServer:
    """A server for this request: it reads the settings now (tests override them) and knows the request's host."""
    return SandboxAuthorizationServer(host=request.get_host())


# --- Userinfo and logout --------------------------------------------------------------------------------------


class _BearerTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> AccessToken | None:
        data = cache.get(_token_key(token_string))
        # The staff mode's tokens share the cache: the Suomi.fi client's only.
        return AccessToken(**data) if data and data["client_id"] == settings.OIDC_RP_CLIENT_ID else None


def userinfo_for(request: HttpRequest) -> dict[str, str]:
    """The claims for the Bearer token on the request; raises Authlib's OAuth2Error (401/403) when it is no good."""
    protector = ResourceProtector()
    protector.register_token_validator(_BearerTokenValidator())
    token = protector.acquire_token(request, scopes=["openid"])
    return userinfo_claims(_person(token.person))


def id_token_hint_valid(hint: str) -> bool:
    """Whether an id_token_hint is an ID token this OP signed for the client (expired ones are fine, per spec)."""
    try:
        token = jwt.decode(hint, KeySet([op_signing_key()]), algorithms=[SIGNING_ALG])
    except (JoseError, ValueError):
        return False
    audience = token.claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    return token.claims.get("iss") == issuer() and settings.OIDC_RP_CLIENT_ID in audiences
