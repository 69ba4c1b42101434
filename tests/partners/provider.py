"""An OpenID provider at the protocol level for relying-party tests: discovery, JWKS, token and userinfo over HTTP,
with ID tokens that each test can shape (and break) as it likes.

By default it behaves as certified providers do: encrypted ID tokens carry `iss` and `aud` in their JWE header
(RFC 7519 §5.3). A test turns on the rest: signing keys without `kid`, `iss` in the authorization response
(RFC 9207, `finish_login(..., iss=...)`), discovery metadata such as the algorithms it advertises."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.urls import reverse
from django.utils import translation
from joserfc import jwe, jwt
from joserfc.jwk import RSAKey
from joserfc.registry import JWE_HEADER_REGISTRY, HeaderParameter
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from partners import keys
from partners.models import AuditEvent

IDENTITY_CLAIM = "urn:oid:1.2.246.21"
# DVV-style test people: temporary (9xx) identity codes, valid per python-stdnum.
TEST_CODE = "010190-999W"
OTHER_TEST_CODE = "131052-930V"
REAL_FORM_CODE = "050505-123H"  # a non-temporary individual number (fictitious person)


def new_key(kid: str | None) -> RSAKey:
    """An RS256 signing key; `kid=None` for one published without a key id (OpenID Connect does not require one)."""
    parameters = {"use": "sig", "alg": "RS256", **({"kid": kid} if kid else {})}
    return RSAKey.generate_key(2048, parameters=parameters, private=True)


def public_jwk(key: RSAKey) -> dict[str, Any]:
    """The public key as published, without a `kid` when it has none (joserfc's KeySet would add a thumbprint)."""
    return key.as_dict(private=False)


@dataclass
class FakeProvider:
    httpserver: HTTPServer
    client_id: str = "kelabooking-test"
    key: RSAKey = field(default_factory=lambda: new_key("op-key-1"))
    published: list[RSAKey] = field(default_factory=list)
    claims_override: dict[str, Any] = field(default_factory=dict)
    signing_key: RSAKey | None = None  # sign with another key than the published one
    header_override: dict[str, Any] = field(default_factory=dict)  # a None value drops the header parameter
    metadata: dict[str, Any] = field(default_factory=dict)  # added to (or, with None, dropped from) discovery
    encrypt: bool = False
    jwe_alg: str = "RSA-OAEP-256"
    jwe_enc: str = "A256GCM"
    jwe_header_override: dict[str, Any] = field(default_factory=dict)  # a None value drops the header parameter
    token_status: int = 200
    userinfo: dict[str, Any] | None = None
    userinfo_signed: bool = False  # answer userinfo as a signed JWT (application/jwt)
    userinfo_signing_key: RSAKey | None = None  # sign that answer with another key than the published one
    userinfo_broken: tuple[int, str] | None = None  # answer userinfo with this status and (non-JSON) body
    token_requests: list[Request] = field(default_factory=list)
    last_nonce: str = ""
    path: str = "/op"  # where on the server it answers: two providers (Suomi.fi's and the staff one) can share one

    def __post_init__(self) -> None:
        self.published = self.published or [self.key]
        server, path = self.httpserver, self.path
        server.expect_request(f"{path}/.well-known/openid-configuration").respond_with_handler(
            lambda request: Response(json.dumps(self.discovery()), mimetype="application/json")
        )
        server.expect_request(f"{path}/jwks").respond_with_handler(self._jwks)
        server.expect_request(f"{path}/token", method="POST").respond_with_handler(self._token)
        server.expect_request(f"{path}/userinfo").respond_with_handler(self._userinfo)

    @property
    def issuer(self) -> str:
        return self.httpserver.url_for(self.path)

    def discovery(self) -> dict[str, Any]:
        document = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "end_session_endpoint": f"{self.issuer}/logout",
            **self.metadata,
        }
        return {name: value for name, value in document.items() if value is not None}

    def configure(self, settings: Any) -> None:
        settings.OIDC_OP_ISSUER = self.issuer
        settings.OIDC_OP_DISCOVERY_URL = f"{self.issuer}/.well-known/openid-configuration"
        for name in ("AUTHORIZATION", "TOKEN", "USER", "JWKS", "LOGOUT"):
            setattr(settings, f"OIDC_OP_{name}_ENDPOINT", "")
        settings.OIDC_RP_CLIENT_ID = self.client_id
        settings.OIDC_RP_CLIENT_SECRET = "s3cret/with:odd&chars"
        settings.OIDC_RP_CLIENT_AUTH_METHOD = "client_secret_basic"
        settings.OIDC_RP_ID_TOKEN_ENCRYPTED = False
        settings.OIDC_RP_JWE_ALLOW_RSA_OAEP = False
        settings.OIDC_RP_REQUEST_OBJECT = False
        settings.ALLOW_TEST_IDENTITY_CODES = True
        settings.OIDC_ACR_ALLOWED = ["http://ftn.ficora.fi/2017/loa2", "http://ftn.ficora.fi/2017/loa3"]

    def sign(self, claims: dict[str, Any], *, key: RSAKey | None = None) -> str:
        key = key or self.signing_key or self.key
        header = {"alg": "RS256", **({"kid": self.key.kid} if self.key.get("kid") else {}), **self.header_override}
        return jwt.encode({name: value for name, value in header.items() if value is not None}, claims, key)

    def encrypt_for_rp(self, token: str) -> str:
        """A nested JWT as certified providers send it: `iss` and `aud` replicated into the protected header."""
        public = RSAKey.import_key(keys.encryption_key().as_dict(private=False))
        protected = {
            "alg": self.jwe_alg,
            "enc": self.jwe_enc,
            "cty": "JWT",
            "kid": public.kid,
            "iss": self.issuer,
            "aud": self.client_id,
            **self.jwe_header_override,
        }
        protected = {name: value for name, value in protected.items() if value is not None}
        # Whatever a test adds to the header is "understood" here, so that even a critical one can be sent.
        extra = {
            name: HeaderParameter(name, lambda value: None) for name in protected if name not in JWE_HEADER_REGISTRY
        }
        registry = jwe.JWERegistry(header_registry=extra, algorithms=[self.jwe_alg, self.jwe_enc])
        return jwe.encrypt_compact(protected, token.encode(), public, registry=registry)

    def id_token(self, *, nonce: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "pseudonym-123",
            "aud": self.client_id,
            "exp": now + 600,
            "iat": now,
            "auth_time": now,
            "nonce": nonce,
            "acr": "http://ftn.ficora.fi/2017/loa3",
            IDENTITY_CLAIM: TEST_CODE,
            "given_name": "Maija",
            "family_name": "Meikäläinen",
        }
        claims.update(self.claims_override)
        token = self.sign({name: value for name, value in claims.items() if value is not None})
        return self.encrypt_for_rp(token) if self.encrypt else token

    def _jwks(self, request: Request) -> Response:
        return Response(json.dumps({"keys": [public_jwk(key) for key in self.published]}), mimetype="application/json")

    def _token(self, request: Request) -> Response:
        self.token_requests.append(request)
        if self.token_status != 200:
            return Response(
                json.dumps({"error": "server_error"}), status=self.token_status, mimetype="application/json"
            )
        body = {
            "access_token": "access-token-1",
            "token_type": "Bearer",
            "expires_in": 600,
            "id_token": self.id_token(nonce=self.last_nonce),
        }
        return Response(json.dumps(body), mimetype="application/json")

    def _userinfo(self, request: Request) -> Response:
        if self.userinfo_broken:
            status, body = self.userinfo_broken
            return Response(body, status=status, mimetype="text/plain")
        claims = {"sub": "pseudonym-123"} if self.userinfo is None else self.userinfo
        if self.userinfo_signed:
            return Response(self.sign(claims, key=self.userinfo_signing_key), mimetype="application/jwt")
        return Response(json.dumps(claims), mimetype="application/json")


# --- Driving the relying party with the test client -----------------------------------------------------------


def url(name: str, language: str = "fi") -> str:
    with translation.override(language):
        return reverse(name)


def authorization_params(response: Any) -> dict[str, str]:
    """The query of the redirect to the authorization endpoint."""
    return {name: values[0] for name, values in parse_qs(urlsplit(response["Location"]).query).items()}


def end_session_form(response: Any) -> tuple[str, dict[str, str]]:
    """The logout page's form to the provider's end_session_endpoint: its action and its hidden fields. A page, not a
    redirect: the ID token it carries as id_token_hint is in no URL."""
    assert response.status_code == 200, response.status_code
    assert not response.has_header("Location")
    page = response.content.decode()
    form = re.search(r'<form method="post" action="([^"]+)" data-autosubmit>(.*?)</form>', page, re.S)
    assert form is not None, "no form to the provider on the logout page"
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(2))
    return html.unescape(form.group(1)), {name: html.unescape(value) for name, value in fields}


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def start_login(client, op: FakeProvider, language: str = "fi") -> dict[str, str]:
    response = client.get(url("partners:login", language))
    assert response.status_code == 302
    params = authorization_params(response)
    if "request" in params:  # a signed request object: its claims are the request
        params = {**params, **jwt.decode(params["request"], keys.signing_key()).claims}
    op.last_nonce = params["nonce"]
    return params


def finish_login(client, params: dict[str, str], *, code: str = "the-code", iss: str | None = None):
    """The provider's redirect back; `iss` as RFC 9207 has providers add it."""
    answer = {"code": code, "state": params["state"], **({"iss": iss} if iss is not None else {})}
    return client.get("/oidc/callback/", answer)


def login_events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action))


# --- Kela's identity provider for staff -----------------------------------------------------------------------

STAFF_SUBJECT = "00000000-0000-0000-0000-0000000000a1"  # an Entra ID style object id
STAFF_GROUP_MAP = {
    "kb-audit-readers": "Audit readers",
    "kb-capacity-admins": "Phone service capacity administrators",
    "kb-registry-admins": ["Registry administrators"],
}


@dataclass
class StaffProvider(FakeProvider):
    """The staff identity provider: its own path, key and client; ID tokens with `amr` and a `groups` claim."""

    client_id: str = "kelabooking-staff-test"
    key: RSAKey = field(default_factory=lambda: new_key("staff-op-key-1"))
    path: str = "/staff-op"
    groups: list[str] = field(default_factory=lambda: ["kb-audit-readers"])
    amr: list[str] | None = field(default_factory=lambda: ["pwd", "mfa"])

    def configure(self, settings: Any) -> None:
        settings.STAFF_OIDC_OP_ISSUER = self.issuer
        settings.STAFF_OIDC_OP_DISCOVERY_URL = f"{self.issuer}/.well-known/openid-configuration"
        for name in ("AUTHORIZATION", "TOKEN", "USER", "JWKS", "LOGOUT"):
            setattr(settings, f"STAFF_OIDC_OP_{name}_ENDPOINT", "")
        settings.STAFF_OIDC_RP_CLIENT_ID = self.client_id
        settings.STAFF_OIDC_RP_CLIENT_SECRET = "staff s3cret/with:odd&chars"
        settings.STAFF_OIDC_RP_CLIENT_AUTH_METHOD = "client_secret_basic"
        settings.STAFF_OIDC_ENABLED = True
        settings.STAFF_OIDC_GROUPS_CLAIM = "groups"
        settings.STAFF_OIDC_GROUP_MAP = STAFF_GROUP_MAP
        settings.STAFF_OIDC_MFA_AMR = ["mfa"]
        settings.STAFF_OIDC_MFA_ACR = []
        settings.STAFF_OIDC_SUPERUSER_VALUE = ""

    def id_token(self, *, nonce: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": STAFF_SUBJECT,
            "aud": self.client_id,
            "exp": now + 600,
            "iat": now,
            "auth_time": now,
            "nonce": nonce,
            "amr": self.amr,
            "groups": self.groups,
            "given_name": "Sanna",
            "family_name": "Sisäinen",
            "email": "sanna.sisainen@kela.example",
        }
        claims.update(self.claims_override)
        return self.sign({name: value for name, value in claims.items() if value is not None})

    def _userinfo(self, request: Request) -> Response:
        claims = {"sub": STAFF_SUBJECT} if self.userinfo is None else self.userinfo
        return Response(json.dumps(claims), mimetype="application/json")


def start_staff_login(client, op: StaffProvider, *, next_url: str = "") -> dict[str, str]:
    response = client.get("/staff/login/", {"next": next_url} if next_url else {})
    assert response.status_code == 302, response.content
    assert response["Location"].startswith(f"{op.issuer}/authorize?")
    params = authorization_params(response)
    op.last_nonce = params["nonce"]
    return params


def finish_staff_login(client, params: dict[str, str], *, code: str = "the-staff-code", iss: str | None = None):
    answer = {"code": code, "state": params["state"], **({"iss": iss} if iss is not None else {})}
    return client.get("/staff/oidc/callback/", answer)
