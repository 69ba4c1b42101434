"""The Suomi.fi sandbox: its OpenID provider and its Valtuudet stand-in, driven through their HTTP endpoints."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from django.core.management import call_command
from django.test import Client
from joserfc import jwe, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey, RSAKey
from stdnum.fi import hetu, ytunnus

from bookings.demo import DEMO_CUSTOMERS, DEMO_PARTNER, DEMO_PARTNER_ORGANISATION
from kelabooking import clock
from partners import keys
from partners.sandbox import oidc, valtuudet
from partners.sandbox.people import PEOPLE, person_for
from registry.demo import DEACTIVATED_ORGANISATION, DEMO_ORGANISATIONS, PENDING_REQUEST

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    """The sandbox's pages have no language prefix: these tests read them in English, the source language."""
    return Client(headers={"accept-language": "en"})


CALLBACK = "http://testserver/oidc/callback/"
VALTUUDET_CALLBACK = "http://testserver/valtuudet/callback/"
HELENA = "010594Y9021"  # the booking mandate for Helsingin kaupunki
TUOMAS = "020594X903P"  # the booking mandate for Tampere and Tukiverkko ry
MATTI = "070770-905D"  # no organisations
CLIENT_ID = "kelabooking-sandbox"
CLIENT_SECRET = "kelabooking-sandbox-secret"


# --- Fixtures and helpers -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _sandbox_settings(settings) -> None:
    settings.OIDC_RP_SIGNING_KEY = settings.OIDC_RP_ENCRYPTION_KEY = ""
    settings.OIDC_RP_GENERATE_KEYS = True
    settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = CLIENT_ID, CLIENT_SECRET
    settings.OIDC_RP_CLIENT_AUTH_METHOD = "client_secret_basic"
    settings.OIDC_RP_ID_TOKEN_ENCRYPTED = False
    settings.OIDC_RP_REQUEST_OBJECT = False
    settings.SUOMIFI_SANDBOX_RP_JWKS_URL = "http://127.0.0.1:9/no-jwks-in-this-test"


@pytest.fixture
def rp_jwks(httpserver, settings) -> str:
    """The relying party's published JWKS, served over real HTTP, with the sandbox's fetcher pointed at it."""
    httpserver.expect_request("/.well-known/jwks.json").respond_with_json(keys.public_jwks())
    settings.SUOMIFI_SANDBOX_RP_JWKS_URL = httpserver.url_for("/.well-known/jwks.json")
    return settings.SUOMIFI_SANDBOX_RP_JWKS_URL


def authorize_params(**overrides: str | None) -> dict[str, str]:
    verifier = overrides.pop("verifier", None) or "v" * 50
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": "openid profile",
        "state": "state-123",
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
        "acr_values": "http://ftn.ficora.fi/2017/loa3 http://ftn.ficora.fi/2017/loa2",
    }
    params.update(overrides)
    return {name: value for name, value in params.items() if value is not None}


def authorize_url(params: dict[str, str]) -> str:
    return f"/sandbox/oidc/authorize?{urlencode(params)}"


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def sign_in(client: Client, *, person: str = HELENA, typed: str = "", **overrides: str) -> tuple[str, dict[str, str]]:
    """Go through the test identifier page; returns the code and the authorization request's parameters."""
    verifier = overrides.setdefault("verifier", secrets.token_urlsafe(48))
    params = authorize_params(**overrides)
    response = client.post(
        authorize_url(params), {"person": "" if typed else person, "identity_code": typed, "action": "identify"}
    )
    assert response.status_code == 302, response.content
    assert response["Location"].startswith(CALLBACK)
    answer = query_of(response["Location"])
    assert answer["state"] == params["state"]
    assert answer["iss"] == oidc.issuer()
    return answer["code"], {**params, "verifier": verifier}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def exchange(client: Client, code: str, verifier: str, *, headers: dict[str, str] | None = None, **extra: str):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier}
    data.update(extra)
    return client.post(
        "/sandbox/oidc/token", data, headers=basic(CLIENT_ID, CLIENT_SECRET) if headers is None else headers
    )


def op_keys(client: Client) -> KeySet:
    return KeySet.import_key_set(client.get("/sandbox/oidc/jwks").json())


def client_assertion(key: RSAKey, *, audience: str | None = None) -> dict[str, str]:
    now = int(clock.now().timestamp())
    claims = {
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "aud": audience or oidc.endpoint_url("token"),
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 60,
    }
    return {
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key),
    }


# --- Discovery and keys ---------------------------------------------------------------------------------------


def test_discovery__get__describes_the_sandbox_provider(client: Client, settings) -> None:
    document = client.get("/sandbox/oidc/.well-known/openid-configuration").json()

    issuer = settings.OIDC_OP_ISSUER
    assert document["issuer"] == issuer
    assert document["authorization_endpoint"] == f"{issuer}/authorize"
    assert document["token_endpoint"] == f"{issuer}/token"
    assert document["userinfo_endpoint"] == f"{issuer}/userinfo"
    assert document["jwks_uri"] == f"{issuer}/jwks"
    assert document["end_session_endpoint"] == f"{issuer}/logout"
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "private_key_jwt"}
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert document["id_token_encryption_alg_values_supported"] == ["RSA-OAEP-256"]
    assert "http://ftn.ficora.fi/2017/loa3" in document["acr_values_supported"]
    assert {"urn:oid:1.2.246.21", "given_name", "family_name", "nonce", "acr"} <= set(document["claims_supported"])
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["request_parameter_supported"] is True
    assert document["request_uri_parameter_supported"] is False
    assert document["request_object_signing_alg_values_supported"] == ["RS256", "PS256"]
    assert document["require_signed_request_object"] is False
    settings.OIDC_RP_REQUEST_OBJECT = True
    assert client.get("/sandbox/oidc/.well-known/openid-configuration").json()["require_signed_request_object"] is True


def test_discovery__issuer_setting_overridden__builds_endpoints_from_it(client: Client, settings) -> None:
    settings.OIDC_OP_ISSUER = "http://demo.example/sandbox/oidc"

    document = client.get("/sandbox/oidc/.well-known/openid-configuration").json()

    assert document["issuer"] == "http://demo.example/sandbox/oidc"
    assert document["token_endpoint"] == "http://demo.example/sandbox/oidc/token"


def test_jwks__get__publishes_only_the_public_signing_key_with_kid(client: Client) -> None:
    document = client.get("/sandbox/oidc/jwks").json()

    [key] = document["keys"]
    assert key["kty"] == "RSA"
    assert key["kid"]
    assert key["use"] == "sig"
    assert key["alg"] == "RS256"
    assert "d" not in key


def test_sandbox_keys__command__generates_the_key_before_any_request(client: Client, settings, tmp_path) -> None:
    """The benchmarks run it before gunicorn's workers start, so that they only read the key."""
    settings.OIDC_RP_KEY_DIR = tmp_path

    call_command("sandbox_keys")

    (generated,) = tmp_path.iterdir()
    [published] = client.get("/sandbox/oidc/jwks").json()["keys"]
    assert published["kid"] == RSAKey.import_key(generated.read_bytes()).thumbprint()


# --- The authorization request --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain", "code_challenge": "p" * 50}, "invalid_request"),
        ({"nonce": None}, "invalid_request"),
        ({"scope": "profile"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"prompt": "none"}, "login_required"),
    ],
    ids=["no-pkce", "pkce-without-method", "pkce-plain", "no-nonce", "no-openid-scope", "implicit", "prompt-none"],
)
def test_authorize__bad_request_from_known_client__redirects_back_with_error_and_state(
    client: Client, overrides: dict[str, str | None], error: str
) -> None:
    response = client.get(authorize_url(authorize_params(**overrides)))

    assert response.status_code == 302
    assert response["Location"].startswith(CALLBACK)
    assert query_of(response["Location"])["error"] == error
    assert query_of(response["Location"])["state"] == "state-123"
    assert query_of(response["Location"])["iss"] == oidc.issuer()  # RFC 9207, errors included


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "someone-else"},
        {"client_id": None},
        {"redirect_uri": "http://evil.example/oidc/callback/"},
        {"redirect_uri": "http://testserver:8080/oidc/callback/"},
        {"redirect_uri": "http://testserver/somewhere-else/"},
        {"redirect_uri": "http://testserver/oidc/callback/?next=/admin/"},
        {"redirect_uri": "/oidc/callback/"},
        {"redirect_uri": "javascript://testserver/oidc/callback/"},
        {"redirect_uri": None},
    ],
    ids=[
        "unknown-client",
        "no-client",
        "foreign-host",
        "other-port",
        "other-path",
        "query",
        "relative",
        "javascript",
        "no-redirect-uri",
    ],
)
def test_authorize__unknown_client_or_foreign_redirect_uri__shows_error_page_without_redirect(
    client: Client, overrides: dict[str, str | None]
) -> None:
    response = client.get(authorize_url(authorize_params(**overrides)))

    assert response.status_code == 400
    assert "Location" not in response
    assert b"The Suomi.fi sandbox refused the request" in response.content


def test_identifier_page__get__lists_the_people_and_the_client(client: Client) -> None:
    response = client.get(authorize_url(authorize_params()))

    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    page = response.content.decode()
    for person in PEOPLE:
        assert person.full_name in page
        assert f'value="{person.identity_code}"' in page
    assert "Helsingin kaupunki (0201256-6): SOTE_AJANVARAUS" in page
    assert CLIENT_ID in page
    assert "<fieldset" in page
    assert "<legend>" in page
    assert 'for="id_identity_code"' in page
    assert "<script>" not in page
    assert "style=" not in page


@pytest.mark.parametrize(("ui_locales", "language"), [("sv", "sv"), ("en-GB fi", "en"), ("de fi", "fi")])
def test_identifier_page__ui_locales__sets_page_language(client: Client, ui_locales: str, language: str) -> None:
    response = client.get(authorize_url(authorize_params(ui_locales=ui_locales)))

    assert response.status_code == 200
    assert f'<html lang="{language}">' in response.content.decode()
    assert response["Content-Language"] == language


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("010594Y9033", "Enter a valid personal identity code"),
        ("310294Y9032", "Enter a valid personal identity code"),
        ("not-a-code", "Enter a valid personal identity code"),
        ("131052-308T", "Only temporary test identity codes"),
    ],
    ids=["check-character", "date", "garbage", "real-range"],
)
def test_identifier_page__bad_typed_code__shows_field_error(client: Client, typed: str, message: str) -> None:
    response = client.post(authorize_url(authorize_params()), {"identity_code": typed, "action": "identify"})

    assert response.status_code == 200
    page = response.content.decode()
    assert message in page
    assert 'id="id_identity_code_error"' in page
    assert 'href="#id_identity_code"' in page


def test_identifier_page__nothing_chosen__asks_for_a_person(client: Client) -> None:
    response = client.post(authorize_url(authorize_params()), {"action": "identify"})

    assert response.status_code == 200
    assert "Choose a test person or type a test personal identity code." in response.content.decode()


def test_identifier_page__post_without_csrf_token__is_refused() -> None:
    client = Client(enforce_csrf_checks=True)

    response = client.post(authorize_url(authorize_params()), {"person": HELENA, "action": "identify"})

    assert response.status_code == 403


def test_identifier_page__cancel__returns_access_denied_with_state(client: Client) -> None:
    response = client.post(authorize_url(authorize_params()), {"action": "cancel"})

    assert response.status_code == 302
    assert response["Location"].startswith(CALLBACK)
    answer = query_of(response["Location"])
    assert (answer["error"], answer["state"], answer["iss"]) == ("access_denied", "state-123", oidc.issuer())
    assert "code" not in answer


# --- The code flow --------------------------------------------------------------------------------------------


def test_code_flow__listed_person__id_token_verifies_against_op_jwks_with_expected_claims(
    client: Client, settings
) -> None:
    code, params = sign_in(client, person=HELENA)

    response = exchange(client, code, params["verifier"])

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] > 0
    assert body["access_token"]
    token = jwt.decode(body["id_token"], op_keys(client), algorithms=["RS256"])
    assert token.header["kid"] == op_keys(client).keys[0].kid
    claims = token.claims
    assert claims["iss"] == settings.OIDC_OP_ISSUER
    assert claims["aud"] == CLIENT_ID
    assert claims["nonce"] == params["nonce"]
    assert claims["acr"] == "http://ftn.ficora.fi/2017/loa3"
    assert claims["urn:oid:1.2.246.21"] == HELENA
    assert claims["given_name"] == "Helena"
    assert claims["family_name"] == "Virtanen"
    assert HELENA not in claims["sub"]
    now = int(clock.now().timestamp())
    assert now - 5 <= claims["iat"] <= now
    assert claims["exp"] == claims["iat"] + 600
    assert claims["auth_time"] <= claims["iat"]


def test_code_flow__same_person_twice__gets_the_same_stable_pseudonymous_sub(client: Client) -> None:
    subjects = []
    for _ in range(2):
        code, params = sign_in(client, person=HELENA)
        subjects.append(jwt.decode(exchange(client, code, params["verifier"]).json()["id_token"], op_keys(client)))

    assert subjects[0].claims["sub"] == subjects[1].claims["sub"]
    code, params = sign_in(client, person=TUOMAS)
    other = jwt.decode(exchange(client, code, params["verifier"]).json()["id_token"], op_keys(client))
    assert other.claims["sub"] != subjects[0].claims["sub"]


def test_code_flow__acr_values_loa2_first__gets_loa2(client: Client) -> None:
    code, params = sign_in(client, acr_values="urn:unknown http://ftn.ficora.fi/2017/loa2")

    token = jwt.decode(exchange(client, code, params["verifier"]).json()["id_token"], op_keys(client))

    assert token.claims["acr"] == "http://ftn.ficora.fi/2017/loa2"


def test_code_flow__typed_identity_code__signs_in_a_person_without_organisations(client: Client) -> None:
    code, params = sign_in(client, typed="020504a902e")

    token = jwt.decode(exchange(client, code, params["verifier"]).json()["id_token"], op_keys(client))

    assert token.claims["urn:oid:1.2.246.21"] == "020504A902E"
    assert person_for("020504A902E").organisations == ()


def test_person_for__typed_mandates_setting__typed_code_holds_the_booking_mandate(settings) -> None:
    settings.SUOMIFI_SANDBOX_TYPED_MANDATES = [("0201256-6", "Helsingin kaupunki")]

    typed = person_for("020504A902E")

    assert [(org.business_id, org.roles) for org in typed.organisations] == [("0201256-6", ("SOTE_AJANVARAUS",))]
    assert person_for("070770-905D").organisations == ()  # a listed person keeps exactly their own mandates


def test_token__wrong_code_verifier__is_refused(client: Client) -> None:
    code, _params = sign_in(client)

    response = exchange(client, code, secrets.token_urlsafe(48))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_token__missing_code_verifier__is_refused(client: Client) -> None:
    code, _params = sign_in(client)

    response = client.post(
        "/sandbox/oidc/token",
        {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK},
        headers=basic(CLIENT_ID, CLIENT_SECRET),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_token__reused_code__is_refused_and_revokes_the_first_access_token(client: Client) -> None:
    code, params = sign_in(client)
    first = exchange(client, code, params["verifier"]).json()

    again = exchange(client, code, params["verifier"])

    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    userinfo = client.get("/sandbox/oidc/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert userinfo.status_code == 401


def test_token__other_redirect_uri__is_refused(client: Client) -> None:
    code, params = sign_in(client)

    response = exchange(client, code, params["verifier"], redirect_uri="http://testserver/oidc/callback/?x=1")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "headers",
    [basic(CLIENT_ID, "wrong-secret"), basic("someone-else", CLIENT_SECRET), {}],
    ids=["wrong-secret", "wrong-client", "no-credentials"],
)
def test_token__wrong_client_credentials__are_refused_with_401(client: Client, headers: dict[str, str]) -> None:
    code, params = sign_in(client)

    response = exchange(client, code, params["verifier"], headers=headers)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_token__client_secret_in_the_form_when_basic_is_registered__is_refused(client: Client) -> None:
    code, params = sign_in(client)

    response = exchange(client, code, params["verifier"], headers={}, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_token__private_key_jwt_signed_with_rp_key__is_accepted(client: Client, settings, rp_jwks: str) -> None:
    settings.OIDC_RP_CLIENT_AUTH_METHOD = "private_key_jwt"
    code, params = sign_in(client)

    response = exchange(client, code, params["verifier"], headers={}, **client_assertion(keys.signing_key()))

    assert response.status_code == 200, response.content
    assert jwt.decode(response.json()["id_token"], op_keys(client)).claims["urn:oid:1.2.246.21"] == HELENA


def test_token__private_key_jwt_with_issuer_as_audience__is_accepted(client: Client, settings, rp_jwks: str) -> None:
    settings.OIDC_RP_CLIENT_AUTH_METHOD = "private_key_jwt"
    code, params = sign_in(client)
    assertion = client_assertion(keys.signing_key(), audience=settings.OIDC_OP_ISSUER)

    response = exchange(client, code, params["verifier"], headers={}, **assertion)

    assert response.status_code == 200, response.content


def test_token__private_key_jwt_signed_with_another_key__is_refused(client: Client, settings, rp_jwks: str) -> None:
    settings.OIDC_RP_CLIENT_AUTH_METHOD = "private_key_jwt"
    code, params = sign_in(client)
    stranger = RSAKey.generate_key(2048, private=True, parameters={"kid": keys.signing_key().kid})

    response = exchange(client, code, params["verifier"], headers={}, **client_assertion(stranger))

    assert response.status_code in {400, 401}
    assert response.json()["error"] == "invalid_client"


def test_token__private_key_jwt_with_unknown_kid__is_refused(client: Client, settings, rp_jwks: str) -> None:
    settings.OIDC_RP_CLIENT_AUTH_METHOD = "private_key_jwt"
    code, params = sign_in(client)
    stranger = RSAKey.generate_key(2048, private=True, parameters={"kid": "stranger"})

    response = exchange(client, code, params["verifier"], headers={}, **client_assertion(stranger))

    assert response.json()["error"] == "invalid_client"


def test_token__private_key_jwt_replayed__is_refused(client: Client, settings, rp_jwks: str) -> None:
    settings.OIDC_RP_CLIENT_AUTH_METHOD = "private_key_jwt"
    assertion = client_assertion(keys.signing_key())
    code, params = sign_in(client)
    assert exchange(client, code, params["verifier"], headers={}, **assertion).status_code == 200
    code, params = sign_in(client)

    response = exchange(client, code, params["verifier"], headers={}, **assertion)

    assert response.json()["error"] == "invalid_client"


def test_token__private_key_jwt_registered__refuses_client_secret_basic(client: Client, settings) -> None:
    settings.OIDC_RP_CLIENT_AUTH_METHOD = "private_key_jwt"
    code, params = sign_in(client)

    response = exchange(client, code, params["verifier"])

    assert response.json()["error"] == "invalid_client"


def test_token__encrypted_id_tokens_on__nested_jwt_with_iss_and_aud_in_its_header(
    client: Client, settings, rp_jwks: str
) -> None:
    """As certified providers do (RFC 7519 §5.3): a JOSE library that refuses header fields it does not know cannot
    open these, which is what the relying party had to learn."""
    settings.OIDC_RP_ID_TOKEN_ENCRYPTED = True
    code, params = sign_in(client)

    id_token = exchange(client, code, params["verifier"]).json()["id_token"]

    with pytest.raises(JoseError):
        jwe.decrypt_compact(id_token, keys.encryption_key(), algorithms=["RSA-OAEP-256", "A256GCM"])
    registry = jwe.JWERegistry(algorithms=["RSA-OAEP-256", "A256GCM"], strict_check_header=False)
    decrypted = jwe.decrypt_compact(id_token, keys.encryption_key(), registry=registry)
    assert decrypted.protected == {
        "alg": "RSA-OAEP-256",
        "enc": "A256GCM",
        "cty": "JWT",
        "kid": keys.encryption_key().kid,
        "iss": settings.OIDC_OP_ISSUER,
        "aud": CLIENT_ID,
    }
    inner = jwt.decode(decrypted.plaintext, op_keys(client))
    assert inner.claims["nonce"] == params["nonce"]
    assert inner.claims["urn:oid:1.2.246.21"] == HELENA


# --- Signed request objects (RFC 9101) ------------------------------------------------------------------------


def request_object(key: RSAKey | None = None, *, alg: str = "RS256", **overrides: object) -> str:
    """The authorization request's parameters as the relying party signs them, with `overrides` (None drops one)."""
    key = key or keys.signing_key()
    now = int(clock.now().timestamp())
    claims = {**authorize_params(), "iss": CLIENT_ID, "aud": oidc.issuer(), "iat": now, "exp": now + 300}
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "oauth-authz-req+jwt"}, claims, key, algorithms=[alg])


def jar_url(request: str, **plain: str) -> str:
    return authorize_url(
        {"client_id": CLIENT_ID, "response_type": "code", "scope": "openid", "request": request, **plain}
    )


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_request_object__signed_with_rp_key__its_parameters_are_the_request(
    client: Client, settings, rp_jwks: str, alg: str
) -> None:
    settings.OIDC_RP_REQUEST_OBJECT = True
    signed = request_object(alg=alg, state="state-from-the-jwt", ui_locales="sv")

    page = client.get(jar_url(signed, state="state-in-the-query", ui_locales="de"))
    answer = client.post(jar_url(signed), {"person": HELENA, "action": "identify"})

    assert page.status_code == 200
    assert '<html lang="sv">' in page.content.decode()
    assert answer.status_code == 302
    assert answer["Location"].startswith(CALLBACK)
    assert query_of(answer["Location"])["state"] == "state-from-the-jwt"  # RFC 9101 §6.3: the JWT's, not the query's


def test_request_object__required_but_missing__refused(client: Client, settings) -> None:
    settings.OIDC_RP_REQUEST_OBJECT = True

    response = client.get(authorize_url(authorize_params()))

    assert response.status_code == 400
    assert "Location" not in response
    assert b"invalid_request" in response.content


def test_request_object__not_required__plain_request_still_works(client: Client) -> None:
    assert client.get(authorize_url(authorize_params())).status_code == 200


@pytest.mark.parametrize(
    "case",
    [
        "other-key",
        "alg-none",
        "hs256",
        "expired",
        "no-exp",
        "wrong-aud",
        "wrong-iss",
        "client-id-mismatch",
        "not-a-jwt",
        "nested-request",
        "redirect-uri-not-a-string",
        "state-not-a-string",
    ],
)
def test_request_object__that_must_not_pass__refused_with_4xx(
    client: Client, settings, rp_jwks: str, case: str
) -> None:
    settings.OIDC_RP_REQUEST_OBJECT = True
    now = int(clock.now().timestamp())
    stranger = RSAKey.generate_key(2048, private=True, parameters={"kid": keys.signing_key().kid})
    signed = {
        "other-key": lambda: request_object(stranger),
        "alg-none": lambda: _unsigned(request_object()),
        "hs256": lambda: jwt.encode({"alg": "HS256"}, {"client_id": CLIENT_ID}, OctKey.import_key("k" * 32)),
        "expired": lambda: request_object(iat=now - 900, exp=now - 600),
        "no-exp": lambda: request_object(exp=None),
        "wrong-aud": lambda: request_object(aud="https://another.example/op"),
        "wrong-iss": lambda: request_object(iss="someone-else"),
        "client-id-mismatch": lambda: request_object(client_id="someone-else"),
        "not-a-jwt": lambda: 'ä.b\\.c"',
        "nested-request": lambda: request_object(request="x"),
        "redirect-uri-not-a-string": lambda: request_object(redirect_uri=["http://testserver/oidc/callback/"]),
        "state-not-a-string": lambda: request_object(state={"a": 1}),
    }[case]()

    for response in (
        client.get(jar_url(signed)),
        client.post(jar_url(signed), {"person": HELENA, "action": "identify"}),
    ):
        assert 400 <= response.status_code < 500, response.content
        assert not response.get("Location", "").startswith(CALLBACK) or "code=" not in response["Location"]


def _unsigned(token: str) -> str:
    """The same claims with `alg: none` and no signature."""
    header, payload, _signature = token.split(".")
    none = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    return f"{none}.{payload}."


# --- Any parameter value: an OAuth error or a 4xx page, never a 500 -------------------------------------------

ODD_VALUES = ["ä", '"', "\\", 'Å"\\x', "\u2028", "€" * 300]


@pytest.mark.parametrize("value", ODD_VALUES, ids=["a-umlaut", "quote", "backslash", "mixed", "line-separator", "long"])
@pytest.mark.parametrize(
    "name",
    [
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "acr_values",
        "ui_locales",
        "prompt",
        "request",
    ],
)
def test_authorize__odd_characters_in_any_parameter__oauth_error_or_4xx_never_500(
    client: Client, name: str, value: str
) -> None:
    url = authorize_url(authorize_params(**{name: value}))

    for response in (client.get(url), client.post(url, {"person": HELENA, "action": "identify"})):
        assert response.status_code < 500
        if response.status_code == 302 and "error=" in response["Location"]:
            assert response["Location"].startswith(CALLBACK)
            assert set(query_of(response["Location"])) >= {"error", "iss"}


@pytest.mark.parametrize("value", ODD_VALUES[:4], ids=["a-umlaut", "quote", "backslash", "mixed"])
def test_authorize__odd_response_type_from_known_client__unsupported_response_type_redirect(
    client: Client, value: str
) -> None:
    response = client.get(authorize_url(authorize_params(response_type=value)))

    assert response.status_code == 302
    answer = query_of(response["Location"])
    assert (answer["error"], answer["state"]) == ("unsupported_response_type", "state-123")


@pytest.mark.parametrize("value", ODD_VALUES[:4], ids=["a-umlaut", "quote", "backslash", "mixed"])
def test_authorize__odd_redirect_uri__error_page_without_redirect(client: Client, value: str) -> None:
    response = client.get(authorize_url(authorize_params(redirect_uri=CALLBACK + value)))

    assert response.status_code == 400
    assert "Location" not in response
    assert b"The redirect_uri is not registered for this client." in response.content


# --- Userinfo and logout --------------------------------------------------------------------------------------


def test_userinfo__bearer_token__returns_the_person_claims(client: Client) -> None:
    code, params = sign_in(client, person=TUOMAS)
    tokens = exchange(client, code, params["verifier"]).json()

    response = client.get("/sandbox/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})

    assert response.status_code == 200
    claims = response.json()
    assert claims["urn:oid:1.2.246.21"] == TUOMAS
    assert claims["given_name"] == "Tuomas"
    assert claims["family_name"] == "Mäkinen"
    assert claims["sub"] == jwt.decode(tokens["id_token"], op_keys(client)).claims["sub"]


@pytest.mark.parametrize("authorization", ["Bearer not-a-token", "", "Basic abc"], ids=["unknown", "none", "basic"])
def test_userinfo__without_a_valid_token__is_refused(client: Client, authorization: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    response = client.get("/sandbox/oidc/userinfo", headers=headers)

    assert response.status_code in {400, 401}
    assert "error" in response.json()


def test_logout__same_host_redirect__returns_there_with_state(client: Client) -> None:
    code, params = sign_in(client)
    id_token = exchange(client, code, params["verifier"]).json()["id_token"]

    response = client.get(
        "/sandbox/oidc/logout",
        {"id_token_hint": id_token, "post_logout_redirect_uri": "http://testserver/fi/", "state": "bye"},
    )

    assert response.status_code == 302
    assert response["Location"] == "http://testserver/fi/?state=bye"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"post_logout_redirect_uri": "http://evil.example/"}, "not on this site"),
        ({"post_logout_redirect_uri": "http://testserver/fi/", "id_token_hint": "forged"}, "did not issue"),
        ({}, ""),
    ],
    ids=["foreign-host", "forged-hint", "no-redirect"],
)
def test_logout__without_acceptable_redirect__shows_logged_out_page(
    client: Client, params: dict[str, str], message: str
) -> None:
    response = client.get("/sandbox/oidc/logout", params)

    assert response.status_code == 200
    page = response.content.decode()
    assert "You have logged out of the Suomi.fi sandbox" in page
    assert message in page


# --- Valtuudet: the checksum header ---------------------------------------------------------------------------


def test_checksum__domain_readme_vector__matches() -> None:
    path = "/service/ypa/user/register/42bbe569/010180-9026?requestId=nodeClient&endUserId=nodeEndUser"
    key = "3ba56df8-88b8-4805-9b04-2f8e7a61ae8f"
    header = "42bbe569 2024-01-15T10:00:00+02:00 WSGltmzbMgVDIIwr8dLiWyzim7lnLkXqdiXg/hWIVSk="

    expected = header.split(" ")[2]

    assert valtuudet.checksum(api_key=key, path_and_query=path, timestamp="2024-01-15T10:00:00+02:00") == expected
    at = dt.datetime(2024, 1, 15, 8, 4, 59, tzinfo=dt.UTC)
    valtuudet.verify_authorization_header(header, path_and_query=path, client_id="42bbe569", api_key=key, now=at)
    with pytest.raises(valtuudet.ChecksumError, match="5 minutes"):
        valtuudet.verify_authorization_header(
            header, path_and_query=path, client_id="42bbe569", api_key=key, now=at + dt.timedelta(seconds=2)
        )


def signed_headers(
    path_and_query: str,
    *,
    settings,
    api_key: str | None = None,
    client_id: str | None = None,
    timestamp: str | None = None,
) -> dict[str, str]:
    timestamp = timestamp or clock.localnow().isoformat(timespec="seconds")
    checksum = valtuudet.checksum(
        api_key=settings.VALTUUDET_API_KEY if api_key is None else api_key,
        path_and_query=path_and_query,
        timestamp=timestamp,
    )
    return {valtuudet.HEADER: f"{client_id or settings.VALTUUDET_CLIENT_ID} {timestamp} {checksum}"}


def register_path(settings, identity_code: str = HELENA, request_id: str = "req-1") -> str:
    return f"/service/ypa/user/register/{settings.VALTUUDET_CLIENT_ID}/{identity_code}?requestId={request_id}"


def test_valtuudet_header__correct__is_accepted(client: Client, settings) -> None:
    path = register_path(settings)

    response = client.get(f"/sandbox/valtuudet{path}", headers=signed_headers(path, settings=settings))

    assert response.status_code == 200, response.content
    assert set(response.json()) == {"sessionId", "userId"}


@pytest.mark.parametrize("spelling", ["150550%2B900M", "150550+900M"], ids=["quoted", "literal"])
def test_valtuudet_header__plus_in_the_path_either_spelling__is_accepted(
    client: Client, settings, spelling: str
) -> None:
    path = f"/service/ypa/user/register/{settings.VALTUUDET_CLIENT_ID}/{spelling}?requestId=req-1"

    response = client.get(f"/sandbox/valtuudet{path}", headers=signed_headers(path, settings=settings))

    assert response.status_code == 200, response.content


def test_valtuudet_header__utc_timestamp_without_seconds__is_accepted(client: Client, settings) -> None:
    path = register_path(settings)
    timestamp = clock.now().astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")

    response = client.get(
        f"/sandbox/valtuudet{path}", headers=signed_headers(path, settings=settings, timestamp=timestamp)
    )

    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    "case", ["wrong-key", "stale", "future", "tampered-query", "missing", "wrong-client", "malformed", "naive-time"]
)
def test_valtuudet_header__bad__is_refused_with_401(client: Client, settings, case: str) -> None:
    path = register_path(settings)
    sent_path = path
    stale = (clock.localnow() - dt.timedelta(minutes=6)).isoformat(timespec="seconds")
    future = (clock.localnow() + dt.timedelta(minutes=6)).isoformat(timespec="seconds")
    headers = {
        "wrong-key": signed_headers(path, settings=settings, api_key="another-key"),
        "stale": signed_headers(path, settings=settings, timestamp=stale),
        "future": signed_headers(path, settings=settings, timestamp=future),
        "tampered-query": signed_headers(path, settings=settings),
        "missing": {},
        "wrong-client": signed_headers(path, settings=settings, client_id="other123"),
        "malformed": {valtuudet.HEADER: "just-one-part"},
        "naive-time": signed_headers(path, settings=settings, timestamp=dt.datetime.now().isoformat()),  # noqa: DTZ005
    }[case]
    if case == "tampered-query":
        sent_path = register_path(settings, request_id="req-2")

    response = client.get(f"/sandbox/valtuudet{sent_path}", headers=headers)

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_valtuudet_register__real_range_identity_code__is_refused(client: Client, settings) -> None:
    path = register_path(settings, identity_code="131052-308T")

    response = client.get(f"/sandbox/valtuudet{path}", headers=signed_headers(path, settings=settings))

    assert response.status_code == 400


# --- Valtuudet: the selection flow ----------------------------------------------------------------------------


def register(client: Client, settings, identity_code: str) -> dict[str, str]:
    path = register_path(settings, identity_code)
    return client.get(f"/sandbox/valtuudet{path}", headers=signed_headers(path, settings=settings)).json()


def selection_url(settings, user_id: str, **overrides: str) -> str:
    params = {
        "client_id": settings.VALTUUDET_CLIENT_ID,
        "response_type": "code",
        "redirect_uri": VALTUUDET_CALLBACK,
        "user": user_id,
        "lang": "fi",
    }
    params.update(overrides)
    return f"/sandbox/valtuudet/oauth/authorize?{urlencode(params)}"


def valtuudet_token(client: Client, settings, code: str, *, password: str | None = None):
    query = urlencode({"code": code, "grant_type": "authorization_code", "redirect_uri": VALTUUDET_CALLBACK})
    credentials = basic(settings.VALTUUDET_CLIENT_ID, password or settings.VALTUUDET_OAUTH_PASSWORD)
    return client.post(f"/sandbox/valtuudet/oauth/token?{query}", headers=credentials)


def test_valtuudet__selection_flow__register_choose_token_roles_unregister(client: Client, settings) -> None:
    session = register(client, settings, TUOMAS)

    page = client.get(selection_url(settings, session["userId"]))
    assert page.status_code == 200
    text = page.content.decode()
    assert '<html lang="fi">' in text
    assert "Tampereen kaupunki (0211675-2)" in text
    assert "Tukiverkko ry (1000000-4)" in text
    chosen = client.post(selection_url(settings, session["userId"]), {"organisation": "1000000-4", "action": "choose"})
    assert chosen.status_code == 302
    assert chosen["Location"].startswith(VALTUUDET_CALLBACK)
    code = query_of(chosen["Location"])["code"]

    token = valtuudet_token(client, settings, code)
    assert token.status_code == 200, token.content
    body = token.json()
    assert set(body) == {"access_token", "token_type", "refresh_token", "expires_in", "scope"}
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("bearer", 599, "read write trust")

    roles_path = f"/service/ypa/api/organizationRoles/{session['sessionId']}?requestId=req-3"
    roles = client.get(
        f"/sandbox/valtuudet{roles_path}",
        headers={**signed_headers(roles_path, settings=settings), "Authorization": f"Bearer {body['access_token']}"},
    )
    assert roles.status_code == 200, roles.content
    assert roles.json() == [
        {"name": "Tukiverkko ry", "identifier": "1000000-4", "complete": True, "roles": ["SOTE_AJANVARAUS"]}
    ]

    unregister_path = f"/service/ypa/user/unregister/{session['sessionId']}?requestId=req-4"
    unregistered = client.get(
        f"/sandbox/valtuudet{unregister_path}", headers=signed_headers(unregister_path, settings=settings)
    )
    assert unregistered.status_code == 200
    again = client.get(
        f"/sandbox/valtuudet{roles_path}",
        headers={**signed_headers(roles_path, settings=settings), "Authorization": f"Bearer {body['access_token']}"},
    )
    assert again.status_code == 401
    assert client.get(selection_url(settings, session["userId"])).status_code == 400


def test_valtuudet_roles__without_checksum_or_bearer__are_refused(client: Client, settings) -> None:
    session = register(client, settings, HELENA)
    chosen = client.post(selection_url(settings, session["userId"]), {"organisation": "0201256-6", "action": "choose"})
    access_token = valtuudet_token(client, settings, query_of(chosen["Location"])["code"]).json()["access_token"]
    path = f"/service/ypa/api/organizationRoles/{session['sessionId']}?requestId=req-5"

    without_checksum = client.get(f"/sandbox/valtuudet{path}", headers={"Authorization": f"Bearer {access_token}"})
    without_bearer = client.get(f"/sandbox/valtuudet{path}", headers=signed_headers(path, settings=settings))

    assert without_checksum.status_code == 401
    assert without_bearer.status_code == 401


def test_valtuudet_authorize__cancel__redirects_with_access_denied(client: Client, settings) -> None:
    session = register(client, settings, HELENA)

    response = client.post(selection_url(settings, session["userId"], state="s-1"), {"action": "cancel"})

    assert response.status_code == 302
    assert query_of(response["Location"]) == {"error": "access_denied", "state": "s-1"}


def test_valtuudet_authorize__nothing_chosen__shows_error(client: Client, settings) -> None:
    session = register(client, settings, HELENA)

    response = client.post(selection_url(settings, session["userId"], lang="en"), {"action": "choose"})

    assert response.status_code == 200
    assert "Choose the organisation you act for." in response.content.decode()


def test_valtuudet_authorize__person_without_organisations__says_so(client: Client, settings) -> None:
    session = register(client, settings, MATTI)

    response = client.get(selection_url(settings, session["userId"], lang="en"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "You have no mandates to act on behalf of an organisation." in page
    assert 'name="organisation"' not in page


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "other123"},
        {"response_type": "token"},
        {"redirect_uri": "http://evil.example/valtuudet/callback/"},
        {"redirect_uri": "http://testserver/oidc/callback/"},
        {"user": "unknown-user"},
    ],
    ids=["client", "response-type", "foreign-host", "other-path", "unknown-user"],
)
def test_valtuudet_authorize__bad_request__shows_error_page(client: Client, settings, overrides: dict) -> None:
    session = register(client, settings, HELENA)

    response = client.get(selection_url(settings, session["userId"], **overrides))

    assert response.status_code == 400
    assert "Location" not in response


def test_valtuudet_token__wrong_password_or_reused_code__is_refused(client: Client, settings) -> None:
    session = register(client, settings, HELENA)
    chosen = client.post(selection_url(settings, session["userId"]), {"organisation": "0201256-6", "action": "choose"})
    code = query_of(chosen["Location"])["code"]

    wrong_password = valtuudet_token(client, settings, code, password="wrong")
    first = valtuudet_token(client, settings, code)
    reused = valtuudet_token(client, settings, code)

    assert wrong_password.status_code == 401
    assert first.status_code == 200
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"


# --- The people and the system check --------------------------------------------------------------------------


def test_people__identity_codes__are_valid_temporary_codes_only() -> None:
    for person in PEOPLE:
        assert hetu.is_valid(person.identity_code, allow_temporary=True), person
        assert not hetu.is_valid(person.identity_code), person
    assert len({person.identity_code for person in PEOPLE}) == len(PEOPLE)


def test_people__organisations__cover_the_cases_the_partner_flow_needs() -> None:
    registry = {org["business_id"] for org in DEMO_ORGANISATIONS} | {DEACTIVATED_ORGANISATION["business_id"]}
    registry.add(PENDING_REQUEST["business_id"])
    organisations = [org for person in PEOPLE for org in person.organisations]
    for org in organisations:
        assert ytunnus.is_valid(org.business_id), org

    assert [org.business_id for org in person_for(HELENA).organisations] == ["0201256-6"]
    assert [org.business_id for org in person_for(TUOMAS).organisations] == ["0211675-2", "1000000-4"]
    assert any(org.business_id not in registry and "SOTE_AJANVARAUS" in org.roles for org in organisations)
    assert any(org.business_id == "0201256-6" and org.roles == ("YLEINEN_ASIOINTI",) for org in organisations)


def test_people__demo_partner__signs_in_with_the_mandate_of_the_demo_bookings() -> None:
    """The demo's partner bookings (bookings/demo.py) are found by signing in as the sandbox person they name."""
    person = person_for(DEMO_PARTNER["identity_code"])

    assert person in PEOPLE
    assert (person.given_name, person.family_name) == (DEMO_PARTNER["first_name"], DEMO_PARTNER["last_name"])
    assert "SOTE_AJANVARAUS" in person.organisation(DEMO_PARTNER_ORGANISATION).roles


def test_people__demo_customers__none_of_them_a_sandbox_person() -> None:
    """A partner signing in as a demo customer would book for themself: the demo keeps its customers apart."""
    assert not {person.identity_code for person in PEOPLE} & {data["identity_code"] for data in DEMO_CUSTOMERS}
