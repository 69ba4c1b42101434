"""The relying party against what certified OpenID providers do and this project's sandbox did not: registered claims
in the JWE header, signing keys without `kid`, `iss` in the authorization response (RFC 9207), signed request
objects (RFC 9101), the algorithms the provider advertises. Also: sign-in while the cache is down, every outage a
page and never a 500, and mozilla-django-oidc's own settings at work."""

from __future__ import annotations

import ast
import logging
import time
import tomllib
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from kelabooking import crypto
from partners import keys, oidc
from partners.models import AuditEvent, User
from tests.partners.provider import (
    IDENTITY_CLAIM,
    OTHER_TEST_CODE,
    TEST_CODE,
    FakeProvider,
    authorization_params,
    end_session_form,
    finish_login,
    login_events,
    new_key,
    public_jwk,
    start_login,
    url,
)

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
CLOSED_PORT_REDIS = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
}


def last_failure() -> dict:
    return AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED).order_by("pk").last().details


def refused_with(response, reason: str) -> None:
    assert response.status_code == 400
    assert f'href="{url("partners:login")}"' in response.content.decode()  # a way to try again
    assert "_auth_user_id" not in response.wsgi_request.session
    assert last_failure() == {"reason": reason}


@pytest.fixture
def encrypted(op: FakeProvider, settings) -> FakeProvider:
    settings.OIDC_RP_ID_TOKEN_ENCRYPTED = True
    op.encrypt = True
    return op


# --- Encrypted ID tokens --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        {},
        {"iss": None, "aud": None},
        {"sub": "pseudonym-123", "aud": ["kelabooking-test"]},
        {"x-vendor-trace": "abc"},
    ],
    ids=["iss-and-aud-as-certified-providers-send", "alg-enc-cty-only", "more-registered-claims", "unknown-non-crit"],
)
def test_encrypted_id_token__registered_claims_in_jwe_header__decrypted(
    client, encrypted: FakeProvider, header: dict
) -> None:
    encrypted.jwe_header_override = header

    response = finish_login(client, start_login(client, encrypted))

    assert response.status_code == 302, login_events(AuditEvent.Action.LOGIN_FAILED)
    assert crypto.decrypt(client.session["oidc_id_token"]).count(".") == 2  # the signed inner token, for id_token_hint


@pytest.mark.parametrize(
    "header",
    [{"iss": "https://evil.example/op"}, {"aud": "someone-else"}, {"sub": "another-person"}, {"iss": 5}],
    ids=["iss", "aud", "sub", "iss-not-a-string"],
)
def test_encrypted_id_token__header_claim_differs_from_the_token__refused(
    client, encrypted: FakeProvider, header: dict
) -> None:
    encrypted.jwe_header_override = header

    refused_with(finish_login(client, start_login(client, encrypted)), "invalid_token")


def test_encrypted_id_token__unknown_critical_header__refused(client, encrypted: FakeProvider) -> None:
    encrypted.jwe_header_override = {"crit": ["x-must-understand"], "x-must-understand": True}

    refused_with(finish_login(client, start_login(client, encrypted)), "invalid_token")


@pytest.mark.parametrize(
    ("sent", "advertised", "accepted"),
    [
        (("RSA-OAEP-256", "A256GCM"), None, True),
        (("RSA-OAEP-256", "A128CBC-HS256"), None, True),
        (("RSA-OAEP-256", "A128GCM"), (["RSA-OAEP-256"], ["A128GCM", "A256GCM"]), True),
        (("RSA-OAEP-256", "A128GCM"), (["RSA-OAEP-256"], ["A256GCM"]), False),
        (("RSA-OAEP-256", "A256GCM"), (["RSA-OAEP"], ["A256GCM"]), False),
        (("RSA-OAEP", "A256GCM"), (["RSA-OAEP", "RSA-OAEP-256"], ["A256GCM"]), False),
        (("RSA-OAEP", "A256GCM"), (["RSA1_5"], ["XC20P"]), False),
        pytest.param(
            ("RSA1_5", "A256GCM"),
            (["RSA1_5"], ["A256GCM"]),
            False,
            marks=pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning"),  # the provider sends it
        ),
    ],
    ids=[
        "nothing-advertised-safe-list",
        "cbc-hmac",
        "advertised",
        "enc-not-advertised",
        "alg-not-advertised",
        "sha1-oaep-without-the-setting",
        "nothing-safe-advertised",
        "rsa1_5",
    ],
)
def test_encrypted_id_token__algorithms__advertised_and_safe_only(
    client, encrypted: FakeProvider, sent: tuple[str, str], advertised: tuple | None, accepted: bool
) -> None:
    encrypted.jwe_alg, encrypted.jwe_enc = sent
    if advertised:
        encrypted.metadata = {
            "id_token_encryption_alg_values_supported": advertised[0],
            "id_token_encryption_enc_values_supported": advertised[1],
        }

    response = finish_login(client, start_login(client, encrypted))

    if accepted:
        assert response.status_code == 302
    else:
        refused_with(response, "invalid_token")


@pytest.mark.parametrize(("advertised", "accepted"), [(["RSA-OAEP"], True), (["RSA-OAEP-256"], False)])
def test_encrypted_id_token__sha1_oaep_allowed_by_setting__only_when_advertised(
    client, encrypted: FakeProvider, settings, advertised: list[str], accepted: bool
) -> None:
    settings.OIDC_RP_JWE_ALLOW_RSA_OAEP = True
    encrypted.jwe_alg = "RSA-OAEP"
    encrypted.metadata = {"id_token_encryption_alg_values_supported": advertised}

    response = finish_login(client, start_login(client, encrypted))

    assert (response.status_code == 302) is accepted


def test_jwks__encryption_key__names_rsa_oaep_256_unless_sha1_is_allowed(client, settings) -> None:
    [enc] = [key for key in client.get("/.well-known/jwks.json").json()["keys"] if key["use"] == "enc"]
    assert enc["alg"] == "RSA-OAEP-256"

    settings.OIDC_RP_JWE_ALLOW_RSA_OAEP = True
    keys.encryption_key.cache_clear()
    [enc] = [key for key in client.get("/.well-known/jwks.json").json()["keys"] if key["use"] == "enc"]
    assert "alg" not in enc


def test_encrypted_id_token__expected_but_plain__refused(client, op: FakeProvider, settings) -> None:
    settings.OIDC_RP_ID_TOKEN_ENCRYPTED = True

    refused_with(finish_login(client, start_login(client, op)), "invalid_token")


# --- Signing keys without kid ---------------------------------------------------------------------------------


def _keys_case(case: str) -> tuple[RSAKey, list[RSAKey], dict]:
    """(the signing key, the published keys, the ID token's header override) for one case."""
    named, unnamed, other = new_key("k1"), new_key(None), new_key("k2")
    return {
        "token-without-kid-one-key-without-kid": (unnamed, [unnamed], {}),
        "token-without-kid-one-key-with-kid": (named, [named], {"kid": None}),
        "token-with-kid-one-key-without-kid": (unnamed, [unnamed], {"kid": "not-published-as-such"}),
        "token-with-kid-beside-a-named-key": (unnamed, [other, unnamed], {"kid": "k3"}),
        "token-without-kid-two-keys": (named, [named, other], {"kid": None}),
        "token-with-unknown-kid-two-unnamed-keys": (unnamed, [unnamed, new_key(None)], {"kid": "k3"}),
    }[case]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("token-without-kid-one-key-without-kid", None),
        ("token-without-kid-one-key-with-kid", None),
        ("token-with-kid-one-key-without-kid", None),
        ("token-with-kid-beside-a-named-key", None),
        ("token-without-kid-two-keys", "invalid_token"),
        ("token-with-unknown-kid-two-unnamed-keys", "invalid_token"),
    ],
)
def test_id_token__kid_optional__accepted_when_the_key_set_leaves_no_doubt(
    client, op: FakeProvider, case: str, reason: str | None
) -> None:
    op.key, op.published, op.header_override = _keys_case(case)

    response = finish_login(client, start_login(client, op))

    if reason is None:
        assert response.status_code == 302, login_events(AuditEvent.Action.LOGIN_FAILED)
    else:
        refused_with(response, reason)


def test_id_token__only_key_without_kid_rotated__refetched_once_and_accepted(
    client, op: FakeProvider, httpserver
) -> None:
    op.key = new_key(None)
    op.published = [op.key]
    finish_login(client, start_login(client, op))
    client.logout()

    op.key = new_key(None)
    op.published = [op.key]
    response = finish_login(client, start_login(client, op))

    assert response.status_code == 302
    assert len([request for request, _ in httpserver.log if request.path == "/op/jwks"]) == 2


def test_id_token__kidless_key_beside_an_encryption_key__unambiguous(client, op: FakeProvider) -> None:
    op.key = new_key(None)
    encryption = RSAKey.generate_key(2048, parameters={"use": "enc", "alg": "RSA-OAEP-256"}, private=True)
    op.published = [op.key, encryption]

    assert finish_login(client, start_login(client, op)).status_code == 302


def test_id_token__signature_altered_with_kidless_key__refused(client, op: FakeProvider) -> None:
    op.key = new_key(None)
    op.published = [op.key]
    op.signing_key = new_key(None)

    refused_with(finish_login(client, start_login(client, op)), "invalid_signature")


# --- RFC 9207: iss in the authorization response --------------------------------------------------------------


@pytest.mark.parametrize(
    ("advertised", "sent", "reason"),
    [
        (True, "issuer", None),
        (True, None, "wrong_issuer"),
        (True, "https://evil.example/op", "wrong_issuer"),
        (False, "https://evil.example/op", "wrong_issuer"),
        (False, "issuer", None),
        (False, None, None),
    ],
    ids=["advertised-right", "advertised-missing", "advertised-wrong", "present-wrong", "present-right", "absent"],
)
def test_authorization_response__iss__checked(
    client, op: FakeProvider, advertised: bool, sent: str | None, reason: str | None
) -> None:
    if advertised:
        op.metadata = {"authorization_response_iss_parameter_supported": True}
    params = start_login(client, op)

    response = finish_login(client, params, iss=op.issuer if sent == "issuer" else sent)

    if reason is None:
        assert response.status_code == 302
    else:
        refused_with(response, reason)
        assert op.token_requests == []  # the code never went to the token endpoint
        # The refused answer used up its login: the same state cannot be tried again.
        finish_login(client, params, iss=op.issuer)
        assert last_failure() == {"reason": "state_missing"}


def test_authorization_response__error_with_wrong_iss__refused_as_such(client, op: FakeProvider) -> None:
    params = start_login(client, op)

    response = client.get("/oidc/callback/", {"error": "access_denied", "state": params["state"], "iss": "https://x"})

    refused_with(response, "wrong_issuer")


# --- Signed request objects (RFC 9101) ------------------------------------------------------------------------


def test_request_object__on__authorization_request_is_a_signed_jwt(client, op: FakeProvider, settings) -> None:
    settings.OIDC_RP_REQUEST_OBJECT = True

    response = client.get(url("partners:login", "sv"))

    assert response["Location"].startswith(f"{op.issuer}/authorize?")
    plain = authorization_params(response)
    assert set(plain) == {"client_id", "response_type", "scope", "request"}
    assert (plain["client_id"], plain["response_type"]) == (op.client_id, "code")
    published = KeySet.import_key_set(client.get("/.well-known/jwks.json").json())
    token = jwt.decode(plain["request"], published, algorithms=["RS256"])
    assert token.header["alg"] == "RS256"
    assert token.header["typ"] == "oauth-authz-req+jwt"
    assert token.header["kid"] == keys.signing_key().kid
    claims = token.claims
    assert (claims["iss"], claims["aud"], claims["client_id"]) == (op.client_id, op.issuer, op.client_id)
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] == claims["iat"]
    assert claims["jti"]
    assert claims["redirect_uri"] == "http://testserver/oidc/callback/"
    assert claims["response_type"] == "code"
    assert claims["code_challenge_method"] == "S256"
    assert claims["ui_locales"] == "sv"
    assert claims["acr_values"] == " ".join(settings.OIDC_ACR_VALUES)
    assert claims["state"] in client.session["oidc_states"]
    assert claims["nonce"] == client.session["oidc_states"][claims["state"]]["nonce"]


def test_request_object__on__login_completes(client, op: FakeProvider, settings) -> None:
    settings.OIDC_RP_REQUEST_OBJECT = True

    assert finish_login(client, start_login(client, op)).status_code == 302
    assert User.objects.get().identity_code == TEST_CODE


def test_request_object__off__plain_parameters_only(client, op: FakeProvider) -> None:
    assert "request" not in start_login(client, op)


@pytest.mark.parametrize(("advertised", "alg"), [(["PS256", "RS256"], "RS256"), (["PS256", "ES256"], "PS256")])
def test_request_object__algorithm__rs256_or_what_discovery_advertises(
    client, op: FakeProvider, settings, advertised: list[str], alg: str
) -> None:
    settings.OIDC_RP_REQUEST_OBJECT = True
    op.metadata = {"request_object_signing_alg_values_supported": advertised}

    request_object = authorization_params(client.get(url("partners:login")))["request"]

    public = RSAKey.import_key(keys.signing_key().as_dict(private=False))
    assert jwt.decode(request_object, public, algorithms=[alg]).header["alg"] == alg


def test_request_object__provider_accepts_no_rsa_algorithm__page_not_500(client, op: FakeProvider, settings) -> None:
    settings.OIDC_RP_REQUEST_OBJECT = True
    op.metadata = {"request_object_signing_alg_values_supported": ["ES256"]}

    response = client.get(url("partners:login", "en"))

    assert response.status_code == 503
    assert "Identification failed" in response.content.decode()
    assert login_events(AuditEvent.Action.LOGIN_FAILED)[0].details == {"reason": "provider_invalid"}


def test_client_assertion__algorithm__what_the_token_endpoint_advertises(client, op: FakeProvider, settings) -> None:
    settings.OIDC_RP_CLIENT_AUTH_METHOD = "private_key_jwt"
    op.metadata = {"token_endpoint_auth_signing_alg_values_supported": ["PS256"]}

    assert finish_login(client, start_login(client, op)).status_code == 302

    public = RSAKey.import_key(keys.signing_key().as_dict(private=False))
    assertion = jwt.decode(op.token_requests[0].form["client_assertion"], public, algorithms=["PS256"])
    assert assertion.header["alg"] == "PS256"


# --- Signed userinfo --------------------------------------------------------------------------------------------


def test_userinfo__signed_jwt__verified_and_completes_the_id_token(client, op: FakeProvider) -> None:
    op.claims_override = {IDENTITY_CLAIM: None}
    op.userinfo = {"sub": "pseudonym-123", IDENTITY_CLAIM: OTHER_TEST_CODE, "iss": op.issuer, "aud": op.client_id}
    op.userinfo_signed = True

    assert finish_login(client, start_login(client, op)).status_code == 302
    assert User.objects.get().identity_code == OTHER_TEST_CODE


@pytest.mark.parametrize(
    ("userinfo", "stranger", "reason"),
    [
        ({"sub": "pseudonym-123", IDENTITY_CLAIM: OTHER_TEST_CODE}, True, "invalid_signature"),
        ({"sub": "pseudonym-123", "iss": "https://evil.example/op"}, False, "wrong_issuer"),
        ({"sub": "pseudonym-123", "aud": "someone-else"}, False, "wrong_audience"),
        ({IDENTITY_CLAIM: OTHER_TEST_CODE}, False, "invalid_token"),
    ],
    ids=["other-key", "other-issuer", "other-audience", "no-sub"],
)
def test_userinfo__signed_jwt_that_must_not_pass__refused(
    client, op: FakeProvider, userinfo: dict, stranger: bool, reason: str
) -> None:
    op.userinfo, op.userinfo_signed = userinfo, True
    if stranger:
        op.userinfo_signing_key = new_key(op.key.kid)

    refused_with(finish_login(client, start_login(client, op)), reason)


@pytest.mark.parametrize(("status", "reason"), [(500, "provider_unreachable"), (200, "provider_invalid")])
def test_userinfo__error_or_not_json__page_not_500(client, op: FakeProvider, status: int, reason: str) -> None:
    op.userinfo_broken = (status, "not json")

    refused_with(finish_login(client, start_login(client, op)), reason)


def test_jwks__endpoint_failing__page_not_500(client, op: FakeProvider, httpserver) -> None:
    params = start_login(client, op)
    httpserver.clear_all_handlers()
    httpserver.expect_request("/op/jwks").respond_with_data("down", status=503)
    op.__post_init__()

    refused_with(finish_login(client, params), "provider_unreachable")


@pytest.mark.parametrize("document", ["not json", '{"issuer": 5}', "[]"], ids=["not-json", "no-endpoints", "a-list"])
def test_discovery__broken__page_at_start_not_500(client, op: FakeProvider, httpserver, document: str) -> None:
    httpserver.clear_all_handlers()
    httpserver.expect_request("/op/.well-known/openid-configuration").respond_with_data(document)

    response = client.get(url("partners:login", "en"))

    assert response.status_code == 503
    assert login_events(AuditEvent.Action.LOGIN_FAILED)[0].details["reason"] in {
        "provider_unreachable",
        "provider_invalid",
    }


# --- The cache down -----------------------------------------------------------------------------------------------


def test_login__cache_down__signs_in_with_a_warning(client, op: FakeProvider, settings, caplog) -> None:
    settings.CACHES = CLOSED_PORT_REDIS
    caplog.set_level(logging.WARNING, logger="partners.oidc")

    response = finish_login(client, start_login(client, op))

    assert response.status_code == 302
    assert User.objects.get().identity_code == TEST_CODE
    assert any("cache cannot be read" in record.getMessage() for record in caplog.records)
    assert end_session_form(client.post(url("partners:logout")))[0] == f"{op.issuer}/logout"


def test_login__cache_down_and_provider_unreachable__page_not_500(client, settings) -> None:
    settings.CACHES = CLOSED_PORT_REDIS
    settings.OIDC_OP_ISSUER = "http://127.0.0.1:9/op"
    settings.OIDC_OP_DISCOVERY_URL = "http://127.0.0.1:9/op/.well-known/openid-configuration"
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = ""

    response = client.get(url("partners:login", "en"))

    assert response.status_code == 503
    assert "cannot be reached" in response.content.decode()


# --- mozilla-django-oidc doing its own work -------------------------------------------------------------------


def test_library_settings__extra_params_store_access_token_and_next__honoured(
    client, op: FakeProvider, settings
) -> None:
    settings.OIDC_AUTH_REQUEST_EXTRA_PARAMS = {"claims_locales": "fi"}
    settings.OIDC_STORE_ACCESS_TOKEN = True

    response = client.get(url("partners:login") + "?next=" + url("partners:terms"))
    params = authorization_params(response)
    op.last_nonce = params["nonce"]
    finished = finish_login(client, params)

    assert params["claims_locales"] == "fi"
    assert client.session["oidc_access_token"] == "access-token-1"
    assert finished["Location"] == url("partners:terms")


def test_library_settings__foreign_next__ignored(client, op: FakeProvider) -> None:
    response = client.get(url("partners:login") + "?next=https://evil.example/")
    params = authorization_params(response)
    op.last_nonce = params["nonce"]

    assert finish_login(client, params)["Location"] == url("partners:work")


def test_login__every_endpoint_in_the_settings__discovery_not_read(client, op: FakeProvider, settings) -> None:
    settings.OIDC_OP_DISCOVERY_URL = "http://127.0.0.1:9/nothing-here"
    for setting, endpoint in {
        "AUTHORIZATION": "authorize",
        "TOKEN": "token",
        "JWKS": "jwks",
        "USER": "userinfo",
    }.items():
        setattr(settings, f"OIDC_OP_{setting}_ENDPOINT", f"{op.issuer}/{endpoint}")

    assert finish_login(client, start_login(client, op)).status_code == 302
    assert User.objects.get().identity_code == TEST_CODE


def test_login__partner_deactivated__refused_with_page(client, op: FakeProvider) -> None:
    User.objects.create(username="partner-x", identity_code=TEST_CODE, is_active=False)

    refused_with(finish_login(client, start_login(client, op)), "invalid_response")


def test_relying_party__reads_no_private_session_key_of_the_library() -> None:
    """mozilla-django-oidc keeps its login states under `oidc_states`, a layout of its own: only it reads them."""
    for path in (ROOT / "partners").rglob("*.py"):
        assert "oidc_states" not in path.read_text(encoding="utf-8"), path


def test_admin_password_login__asks_no_provider(client, settings) -> None:
    """The backend answers only the provider's callback: an admin's password login never reaches for discovery."""
    settings.OIDC_OP_DISCOVERY_URL = "http://127.0.0.1:9/nothing-here"
    User.objects.create_superuser("fpa", password="a-long-enough-password")  # noqa: S106

    assert client.login(username="fpa", password="a-long-enough-password")  # noqa: S106


# --- One JOSE library ----------------------------------------------------------------------------------------


def test_relying_party__imports__joserfc_only_and_authlib_only_in_the_sandbox() -> None:
    other_jose = {"jwt", "jose", "jwcrypto", "josepy", "authlib"}
    for path in (ROOT / "partners").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {
            node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
        }
        allowed = {"authlib"} if "sandbox" in path.parts else set()
        assert not (imported & other_jose) - allowed, path


def test_dependencies__joserfc_ours_pyjwt_only_through_the_library() -> None:
    """Authlib, the sandbox's, is not the product's either (tests/partners/test_sandbox_apart.py)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = [requirement.split(">")[0].split("[")[0].split("=")[0].lower() for requirement in project["dependencies"]]
    assert "pyjwt" not in names
    assert {"joserfc", "mozilla-django-oidc"} <= set(names)


def test_relying_party_module__verifies_with_joserfc(client, op: FakeProvider) -> None:
    """The verified claims come from our own check, whatever PyJWT (mozilla-django-oidc's) would have said."""
    params = start_login(client, op)
    claims = oidc.verify_id_token(
        op.id_token(nonce=params["nonce"]), config=oidc.provider_config(), nonce=params["nonce"]
    )
    assert claims[IDENTITY_CLAIM] == TEST_CODE
    assert claims["exp"] > time.time()


def test_public_jwk__kidless_key__published_without_kid() -> None:
    assert "kid" not in public_jwk(new_key(None))
