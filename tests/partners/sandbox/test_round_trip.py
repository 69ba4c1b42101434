"""The relying party against the sandbox, as `make run` has them: the provider's back channel (discovery, token, JWKS,
userinfo; the sandbox fetching the RP's JWKS) over real HTTP to the live server, the browser's part with the test
client. Once with the defaults, once with everything a certified provider and Traficom M72B brokers ask for:
signed request objects, `private_key_jwt`, encrypted ID tokens (with `iss` and `aud` in their JWE header) and `iss`
in the authorization response."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from kelabooking import crypto
from partners.models import AuditEvent, User
from tests.partners.provider import end_session_form

pytestmark = pytest.mark.django_db(transaction=True)

HELENA = "010594Y9021"


@pytest.fixture
def sandbox(live_server, settings) -> str:
    base = live_server.url
    settings.SUOMIFI_SANDBOX_BASE_URL = base
    settings.SUOMIFI_SANDBOX_RP_JWKS_URL = ""
    settings.OIDC_OP_ISSUER = f"{base}/sandbox/oidc"
    settings.OIDC_OP_DISCOVERY_URL = f"{base}/sandbox/oidc/.well-known/openid-configuration"
    for name in ("AUTHORIZATION", "TOKEN", "USER", "JWKS", "LOGOUT"):
        setattr(settings, f"OIDC_OP_{name}_ENDPOINT", "")
    settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = "kelabooking-sandbox", "kelabooking-sandbox-secret"
    settings.OIDC_RP_GENERATE_KEYS = True
    settings.OIDC_RP_SIGNING_KEY = settings.OIDC_RP_ENCRYPTION_KEY = ""
    return base


def local(url: str) -> str:
    """The path and query of an absolute URL: the test client is the browser, in-process."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


@pytest.mark.parametrize("everything", [False, True], ids=["defaults", "request-object-pkjwt-encrypted"])
def test_sandbox_round_trip__sign_in_and_out__in_the_language_started_in(
    sandbox: str, settings, everything: bool
) -> None:
    settings.OIDC_RP_REQUEST_OBJECT = everything
    settings.OIDC_RP_ID_TOKEN_ENCRYPTED = everything
    settings.OIDC_RP_CLIENT_AUTH_METHOD = "private_key_jwt" if everything else "client_secret_basic"
    browser = Client(headers={"accept-language": "sv"})

    authorize = browser.get("/sv/login/")["Location"]
    assert authorize.startswith(f"{sandbox}/sandbox/oidc/authorize?")
    assert ("request" in parse_qs(urlsplit(authorize).query)) is everything
    page = browser.get(local(authorize))
    assert page.status_code == 200
    assert '<html lang="sv">' in page.content.decode()
    callback = browser.post(local(authorize), {"person": HELENA, "action": "identify"})["Location"]
    assert parse_qs(urlsplit(callback).query)["iss"] == [settings.OIDC_OP_ISSUER]
    signed_in = browser.get(local(callback))

    assert signed_in.status_code == 302, AuditEvent.objects.values_list("details", flat=True)
    assert signed_in["Location"] == "/sv/work/"
    assert User.objects.get().identity_code == HELENA
    assert crypto.decrypt(browser.session["oidc_id_token"]).count(".") == 2

    action, fields = end_session_form(browser.post("/sv/logout/"))
    assert action == f"{sandbox}/sandbox/oidc/logout"
    assert "id_token_hint" in fields
    returned = browser.post(local(action), fields)["Location"]
    assert returned == "http://testserver/fi/logged-out/"
    assert browser.get(local(returned))["Location"] == "/sv/logged-out/"
    assert list(AuditEvent.objects.order_by("pk").values_list("action", flat=True)) == ["login", "logout"]
