"""The sandbox's staff mode, as `make run` has it: the admin's relying party against the staff provider over real HTTP
(discovery, token, JWKS, userinfo at the live server), the browser's part with the test client. Each kind of test
staff member gets what the settings' sandbox group map gives them, and the provider stays apart from the Suomi.fi
one."""

from __future__ import annotations

import base64
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from django.conf import settings as django_settings
from django.test import Client
from joserfc import jwt
from joserfc.jwk import KeySet

from kelabooking.permissions import GROUP_PERMISSIONS
from partners.models import AuditEvent, User
from partners.sandbox import oidc, staff

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sandbox(live_server, settings) -> str:
    base = live_server.url
    settings.SUOMIFI_SANDBOX_BASE_URL = base
    settings.STAFF_OIDC_OP_ISSUER = f"{base}/sandbox/staff-oidc"
    settings.STAFF_OIDC_OP_DISCOVERY_URL = f"{base}/sandbox/staff-oidc/.well-known/openid-configuration"
    settings.OIDC_OP_ISSUER = f"{base}/sandbox/oidc"
    settings.OIDC_OP_DISCOVERY_URL = f"{base}/sandbox/oidc/.well-known/openid-configuration"
    settings.OIDC_RP_GENERATE_KEYS = True
    return base


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def sign_in(browser: Client, username: str):
    authorize = browser.get("/staff/login/")["Location"]
    assert authorize.startswith(f"{django_settings.STAFF_OIDC_OP_ISSUER}/authorize?")
    page = browser.get(local(authorize))
    assert page.status_code == 200
    assert username in page.content.decode()
    callback = browser.post(local(authorize), {"person": username, "action": "sign-in"})["Location"]
    assert callback.startswith("http://testserver/staff/oidc/callback/?")
    return browser.get(local(callback))


@pytest.mark.parametrize("person", staff.STAFF_PEOPLE, ids=lambda person: person.username)
def test_staff_mode__each_test_staff_member__gets_exactly_their_groups_or_the_refusal(sandbox, person) -> None:
    browser = Client(headers={"accept-language": "en"})

    response = sign_in(browser, person.username)

    mapped = {django_settings.STAFF_OIDC_GROUP_MAP[group] for group in person.groups if group != staff.UNMAPPED_GROUP}
    if not person.mfa:
        assert response.status_code == 403
        assert AuditEvent.objects.get().details == {"reason": "mfa_required"}
    elif not mapped:
        assert response.status_code == 403
        assert AuditEvent.objects.get().details == {"reason": "no_staff_group"}
    else:
        assert response.status_code == 302, AuditEvent.objects.values_list("details", flat=True)
        user = User.objects.get(staff_subject=person.subject)
        assert set(user.groups.values_list("name", flat=True)) == mapped
        assert (user.first_name, user.last_name) == (person.given_name, person.family_name)
        assert browser.get("/admin/").status_code == 200


def test_staff_mode__sign_out__ends_the_provider_session_and_comes_back(sandbox) -> None:
    browser = Client(headers={"accept-language": "en"})
    sign_in(browser, "kaisa.kaikki")

    end_session = browser.post("/admin/logout/")["Location"]

    assert end_session.startswith(f"{sandbox}/sandbox/staff-oidc/logout?")
    returned = browser.get(local(end_session))["Location"]
    assert returned == "http://testserver/staff/logged-out/"
    assert browser.get(local(returned)).status_code == 200
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions == ["staff_login", "staff_logout"]


def test_staff_mode__group_claim_values__each_maps_to_a_staff_group() -> None:
    assert set(staff.ALL_GROUPS) == set(django_settings.STAFF_OIDC_GROUP_MAP)
    assert set(django_settings.STAFF_OIDC_GROUP_MAP.values()) == set(GROUP_PERMISSIONS)
    assert staff.UNMAPPED_GROUP not in django_settings.STAFF_OIDC_GROUP_MAP


# --- The staff provider apart from the Suomi.fi one -----------------------------------------------------------


def _code(client: Client, *, client_id: str, redirect_uri: str, path: str) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    params = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": "openid profile email",
        "state": "s",
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    return client.get(f"{path}?{urlencode(params)}"), verifier


def test_staff_provider__partner_client_or_partner_callback__not_served(client) -> None:
    partner_client, _ = _code(
        client,
        client_id=django_settings.OIDC_RP_CLIENT_ID,
        redirect_uri="http://testserver/oidc/callback/",
        path="/sandbox/staff-oidc/authorize",
    )
    partner_callback, _ = _code(
        client,
        client_id=django_settings.STAFF_OIDC_RP_CLIENT_ID,
        redirect_uri="http://testserver/oidc/callback/",
        path="/sandbox/staff-oidc/authorize",
    )

    assert partner_client.status_code == 400
    assert partner_callback.status_code == 400


def test_staff_provider__id_token__own_issuer_key_and_claims(client) -> None:
    response, verifier = _code(
        client,
        client_id=django_settings.STAFF_OIDC_RP_CLIENT_ID,
        redirect_uri="http://testserver/staff/oidc/callback/",
        path="/sandbox/staff-oidc/authorize",
    )
    assert response.status_code == 200
    authorize = response.wsgi_request.get_full_path()
    answer = client.post(authorize, {"person": "aino.tarkastaja", "action": "sign-in"})["Location"]
    code = parse_qs(urlsplit(answer).query)["code"][0]
    client_id, secret = django_settings.STAFF_OIDC_RP_CLIENT_ID, django_settings.STAFF_OIDC_RP_CLIENT_SECRET
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    token = client.post(
        "/sandbox/staff-oidc/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "http://testserver/staff/oidc/callback/",
            "code_verifier": verifier,
        },
        headers={"Authorization": f"Basic {credentials}"},
    ).json()

    staff_keys = KeySet.import_key_set(client.get("/sandbox/staff-oidc/jwks").json())
    claims = jwt.decode(token["id_token"], staff_keys, algorithms=["RS256"]).claims
    assert claims["iss"] == staff.issuer() != oidc.issuer()
    assert claims["aud"] == django_settings.STAFF_OIDC_RP_CLIENT_ID
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["groups"] == ["kb-audit-readers", staff.UNMAPPED_GROUP]
    partner_keys = KeySet.import_key_set(client.get("/sandbox/oidc/jwks").json())
    assert {key.kid for key in partner_keys.keys}.isdisjoint(key.kid for key in staff_keys.keys)
    # The Suomi.fi stand-in's userinfo does not answer the staff client's access token.
    userinfo = client.get("/sandbox/oidc/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert userinfo.status_code == 401
    staff_userinfo = client.get(
        "/sandbox/staff-oidc/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert staff_userinfo.json()["sub"] == claims["sub"]
