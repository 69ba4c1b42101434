"""An OpenID provider at the protocol level for relying-party tests: discovery, JWKS, token and userinfo over HTTP,
with ID tokens that each test can shape (and break) as it likes."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from joserfc import jwe, jwt
from joserfc.jwk import KeySet, RSAKey
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from partners import keys

IDENTITY_CLAIM = "urn:oid:1.2.246.21"
# DVV-style test people: temporary (9xx) identity codes, valid per python-stdnum.
TEST_CODE = "010190-999W"
OTHER_TEST_CODE = "131052-930V"
REAL_FORM_CODE = "050505-123H"  # a non-temporary individual number (fictitious person)


def new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"}, private=True)


@dataclass
class FakeProvider:
    httpserver: HTTPServer
    client_id: str = "kelabooking-test"
    key: RSAKey = field(default_factory=lambda: new_key("op-key-1"))
    published: list[RSAKey] = field(default_factory=list)
    claims_override: dict[str, Any] = field(default_factory=dict)
    signing_key: RSAKey | None = None  # sign with another key than the published one
    header_override: dict[str, Any] = field(default_factory=dict)
    encrypt: bool = False
    token_status: int = 200
    userinfo: dict[str, Any] | None = None
    token_requests: list[Request] = field(default_factory=list)
    last_nonce: str = ""

    def __post_init__(self) -> None:
        self.published = self.published or [self.key]
        server = self.httpserver
        server.expect_request("/op/.well-known/openid-configuration").respond_with_json(self.discovery())
        server.expect_request("/op/jwks").respond_with_handler(
            lambda request: Response(
                json.dumps(KeySet(self.published).as_dict(private=False)), mimetype="application/json"
            )
        )
        server.expect_request("/op/token", method="POST").respond_with_handler(self._token)
        server.expect_request("/op/userinfo").respond_with_handler(self._userinfo)

    @property
    def issuer(self) -> str:
        return self.httpserver.url_for("/op")

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "end_session_endpoint": f"{self.issuer}/logout",
        }

    def configure(self, settings: Any) -> None:
        settings.OIDC_OP_ISSUER = self.issuer
        settings.OIDC_OP_DISCOVERY_URL = f"{self.issuer}/.well-known/openid-configuration"
        for name in ("AUTHORIZATION", "TOKEN", "USER", "JWKS", "LOGOUT"):
            setattr(settings, f"OIDC_OP_{name}_ENDPOINT", "")
        settings.OIDC_RP_CLIENT_ID = self.client_id
        settings.OIDC_RP_CLIENT_SECRET = "s3cret/with:odd&chars"
        settings.OIDC_RP_CLIENT_AUTH_METHOD = "client_secret_basic"
        settings.OIDC_RP_ID_TOKEN_ENCRYPTED = False
        settings.ALLOW_TEST_IDENTITY_CODES = True
        settings.OIDC_ACR_ALLOWED = ["http://ftn.ficora.fi/2017/loa2", "http://ftn.ficora.fi/2017/loa3"]

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
        claims = {name: value for name, value in claims.items() if value is not None}
        key = self.signing_key or self.key
        header = {"alg": "RS256", "kid": self.key.kid, **self.header_override}
        token = jwt.encode(header, claims, key)
        if self.encrypt:
            protected = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT"}
            public = RSAKey.import_key(keys.encryption_key().as_dict(private=False))
            token = jwe.encrypt_compact(protected, token.encode(), public, algorithms=["RSA-OAEP-256", "A256GCM"])
        return token

    def _jwks(self, request: Request) -> Response:
        return Response(json.dumps(KeySet(self.published).as_dict(private=False)), mimetype="application/json")

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
        if self.userinfo is None:
            return Response(json.dumps({"sub": "pseudonym-123"}), mimetype="application/json")
        return Response(json.dumps(self.userinfo), mimetype="application/json")


def authorization_params(response: Any) -> dict[str, str]:
    """The query of the redirect to the authorization endpoint."""
    return {name: values[0] for name, values in parse_qs(urlsplit(response["Location"]).query).items()}


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
