"""The sandbox's staff mode: the local stand-in for Kela's own identity provider, where FPA staff sign in to the admin.

A second OpenID provider beside the Suomi.fi one (partners/sandbox/oidc.py), built from the same Authlib pieces but
with everything of its own: issuer settings.STAFF_OIDC_OP_ISSUER (`/sandbox/staff-oidc`), signing key, one client
(settings.STAFF_OIDC_RP_CLIENT_ID, secret by Basic or form), callback path `/staff/oidc/callback/`, and test staff
instead of test people. Its ID tokens carry what a directory-backed provider (Entra ID, AD FS, Keycloak) releases:
`sub`, names, e-mail, `amr` (with `mfa` when the person signed in with a second factor) and a `groups` claim whose
values the settings map to the staff groups (STAFF_OIDC_GROUP_MAP's sandbox default).

Test staff: one in each staff group, one in all of them, one who signs in without MFA, one in no mapped group.
Sandbox leniencies as on the Suomi.fi side: any host:port the request came to, plain HTTP, no single sign-on.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from authlib.integrations.django_oauth2.resource_protector import ResourceProtector
from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oidc.core import OpenIDCode
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import salted_hmac
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from partners.keys import load_or_generate_rsa_key, with_use
from partners.sandbox import oidc

STAFF_CALLBACK_PATH = "/staff/oidc/callback/"
SCOPES_SUPPORTED = ["openid", "profile", "email"]
AUTH_METHODS_SUPPORTED = ["client_secret_basic", "client_secret_post"]
GROUPS_CLAIM = "groups"
# The group claim values of the staff groups, as settings.STAFF_OIDC_GROUP_MAP maps them by default in the sandbox.
AUDIT_READERS = "kb-audit-readers"
SERVICE_ADMINS = "kb-service-admins"
CAPACITY_ADMINS = "kb-capacity-admins"
CUSTOMER_SERVICE = "kb-customer-service"
REGISTRY_ADMINS = "kb-registry-admins"
ALL_GROUPS = (AUDIT_READERS, SERVICE_ADMINS, CAPACITY_ADMINS, CUSTOMER_SERVICE, REGISTRY_ADMINS)
UNMAPPED_GROUP = "kela-all-staff"  # a directory group that this service does not map to anything


@dataclass(frozen=True)
class StaffPerson:
    username: str
    given_name: str
    family_name: str
    groups: tuple[str, ...]
    mfa: bool = True

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def subject(self) -> str:
        """A stable pseudonymous `sub`, like a directory's object id."""
        return salted_hmac("partners.sandbox.staff-subject", self.username, algorithm="sha256").hexdigest()[:32]

    @property
    def amr(self) -> list[str]:
        return ["pwd", "otp", "mfa"] if self.mfa else ["pwd"]


STAFF_PEOPLE: tuple[StaffPerson, ...] = (
    StaffPerson("aino.tarkastaja", "Aino", "Tarkastaja", (AUDIT_READERS, UNMAPPED_GROUP)),
    StaffPerson("paavo.palvelu", "Paavo", "Palvelu", (SERVICE_ADMINS,)),
    StaffPerson("kerttu.kapasiteetti", "Kerttu", "Kapasiteetti", (CAPACITY_ADMINS,)),
    StaffPerson("aku.asiakaspalvelu", "Aku", "Asiakaspalvelu", (CUSTOMER_SERVICE,)),
    StaffPerson("riitta.rekisteri", "Riitta", "Rekisteri", (REGISTRY_ADMINS,)),
    StaffPerson("kaisa.kaikki", "Kaisa", "Kaikki", ALL_GROUPS),
    # In every group, but signs in with a password only: refused for want of MFA.
    StaffPerson("niilo.yksivaiheinen", "Niilo", "Yksivaiheinen", ALL_GROUPS, mfa=False),
    # Signs in with MFA, but in no group that this service maps: refused, no admin.
    StaffPerson("ville.vierailija", "Ville", "Vierailija", (UNMAPPED_GROUP,)),
)


def staff_person(username: str) -> StaffPerson | None:
    return next((person for person in STAFF_PEOPLE if person.username == username), None)


def staff_claims(person: StaffPerson) -> dict[str, Any]:
    return {
        "sub": person.subject,
        "given_name": person.given_name,
        "family_name": person.family_name,
        "name": person.full_name,
        "email": f"{person.username}@kela.example",
        "preferred_username": person.username,
        GROUPS_CLAIM: list(person.groups),
    }


# --- Endpoints and keys ---------------------------------------------------------------------------------------


def issuer() -> str:
    return settings.STAFF_OIDC_OP_ISSUER.rstrip("/")


def endpoint_url(name: str) -> str:
    return f"{issuer()}/{name}"


@functools.lru_cache(maxsize=4)
def _signing_key(key_dir: str) -> RSAKey:
    key = load_or_generate_rsa_key("", generated_name="sandbox-staff-op-signing.pem")
    return with_use(key, use="sig", alg=oidc.SIGNING_ALG)


def op_signing_key() -> RSAKey:
    """The staff OP's own signing key: a token of the Suomi.fi stand-in never verifies here, nor one of this there."""
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
        "id_token_signing_alg_values_supported": [oidc.SIGNING_ALG],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "amr",
            "given_name",
            "family_name",
            "name",
            "email",
            "preferred_username",
            GROUPS_CLAIM,
        ],
        "ui_locales_supported": ["fi", "sv", "en"],
        "request_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
    }


# --- Authlib models and grant ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffClient(oidc.SandboxClient):
    """The staff client: its own callback path and scopes."""

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(item for item in (scope or "").split() if item in SCOPES_SUPPORTED)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return oidc.same_host_uri(redirect_uri, host=self.host, path=STAFF_CALLBACK_PATH)


@dataclass(frozen=True)
class StaffAuthorizationCode(oidc.AuthorizationCode):
    def get_amr(self) -> list[str] | None:
        person = staff_person(self.person["username"])
        return person.amr if person else None


def _person_data(person: StaffPerson) -> dict[str, str]:
    return {"username": person.username}


def _person(data: dict[str, str]) -> StaffPerson:
    person = staff_person(data["username"])
    if person is None:  # a code or token from before the list changed
        raise InvalidRequestError("Unknown test staff member.")
    return person


class _StaffGrant(oidc._AuthorizationCodeGrant):
    @property
    def TOKEN_ENDPOINT_AUTH_METHODS(self) -> list[str]:  # noqa: N802 - Authlib's attribute name
        return [settings.STAFF_OIDC_RP_CLIENT_AUTH_METHOD]

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
            "auth_time": oidc._now(),
            "acr": "",
            "person": _person_data(request.user),
        }
        cache.set(oidc._code_key(code), data, oidc.CODE_LIFETIME_SECONDS)
        cache.set(oidc._nonce_key(client_id, data["nonce"]), True, oidc.NONCE_MEMORY_SECONDS)

    def query_authorization_code(self, code: str, client: ClientMixin) -> StaffAuthorizationCode | None:
        found = super().query_authorization_code(code, client)
        return StaffAuthorizationCode(**dataclasses.asdict(found)) if found is not None else None

    def authenticate_user(self, authorization_code: oidc.AuthorizationCode) -> StaffPerson:
        return _person(authorization_code.person)


class _StaffOpenIDCode(oidc._OpenIDCode):
    def resolve_client_private_key(self, client: ClientMixin) -> RSAKey:
        return op_signing_key()

    def get_encode_header(self, client: ClientMixin) -> dict[str, str]:
        return {"alg": oidc.SIGNING_ALG, "kid": op_signing_key().kid, "typ": "JWT"}

    def get_client_claims(self, client: ClientMixin) -> dict[str, Any]:
        now = oidc._now()
        return {"iss": issuer(), "aud": client.get_client_id(), "iat": now, "exp": now + oidc.ID_TOKEN_LIFETIME_SECONDS}

    def generate_user_info(self, user: StaffPerson, scope: str) -> dict[str, Any]:
        return staff_claims(user)

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        return OpenIDCode.encode_id_token(self, token, request)  # signed, never encrypted


class _StaffIssuerParameter(oidc._IssuerParameter):
    def get_issuer(self) -> str:
        return issuer()

    def add_issuer_parameter(self, authorization_server: AuthorizationServer, response: HttpResponse) -> None:
        with_issuer(response)


def with_issuer(response: HttpResponse) -> HttpResponse:
    if response.has_header("Location"):
        response["Location"] = oidc.uri_with_params(response["Location"], {"iss": issuer()})
    return response


class StaffAuthorizationServer(oidc.SandboxAuthorizationServer):
    """Authlib's authorization server with the staff client, test staff and the staff OP's key."""

    def __init__(self, *, host: str) -> None:
        AuthorizationServer.__init__(self)
        self.host = host
        self.register_token_generator("default", self._generate_token)
        self.register_grant(_StaffGrant, [oidc._RequireS256(required=True), _StaffOpenIDCode()])
        self.register_extension(_StaffIssuerParameter())

    def query_client(self, client_id: str | None) -> StaffClient | None:
        if not client_id or client_id != settings.STAFF_OIDC_RP_CLIENT_ID:
            return None
        return StaffClient(
            client_id=settings.STAFF_OIDC_RP_CLIENT_ID,
            client_secret=settings.STAFF_OIDC_RP_CLIENT_SECRET,
            auth_method=settings.STAFF_OIDC_RP_CLIENT_AUTH_METHOD,
            host=self.host,
        )

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        key = oidc._token_key(token["access_token"])
        data = {
            "client_id": request.client.get_client_id(),
            "scope": token.get("scope", ""),
            "person": _person_data(request.user),
        }
        cache.set(key, data, oidc.ACCESS_TOKEN_LIFETIME_SECONDS)
        if request.authorization_code is not None:
            cache.set(oidc._used_code_key(request.authorization_code.code), key, oidc.CODE_LIFETIME_SECONDS * 2)


def authorization_server(request: HttpRequest) -> StaffAuthorizationServer:
    return StaffAuthorizationServer(host=request.get_host())


# --- Userinfo and logout --------------------------------------------------------------------------------------


class _StaffTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> oidc.AccessToken | None:
        data = cache.get(oidc._token_key(token_string))
        if not data or data["client_id"] != settings.STAFF_OIDC_RP_CLIENT_ID:
            return None
        return oidc.AccessToken(**data)


def userinfo_for(request: HttpRequest) -> dict[str, Any]:
    protector = ResourceProtector()
    protector.register_token_validator(_StaffTokenValidator())
    token = protector.acquire_token(request, scopes=["openid"])
    return staff_claims(_person(token.person))


def id_token_hint_valid(hint: str) -> bool:
    """Whether an id_token_hint is an ID token this staff OP signed for the staff client."""
    try:
        token = jwt.decode(hint, KeySet([op_signing_key()]), algorithms=[oidc.SIGNING_ALG])
    except (JoseError, ValueError):
        return False
    audience = token.claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    return token.claims.get("iss") == issuer() and settings.STAFF_OIDC_RP_CLIENT_ID in audiences
