"""The Valtuudet client and the organisation choice, against an HTTP stand-in speaking Valtuudet's protocol."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.urls import reverse
from django.utils import translation
from werkzeug import Request, Response

from partners import context, valtuudet
from partners.context import ActingContext, CustomerLockedError
from partners.models import AuditEvent
from partners.services import Decision, OrganisationDecision, organisation_choose
from tests.factories import CustomerFactory, OrganisationFactory, UserFactory, acting_for
from tests.partners.provider import TEST_CODE

pytestmark = pytest.mark.django_db

API_KEY = "valtuudet-test-api-key"


def test_valtuudet__checksum_header__matches_the_fixed_vector() -> None:
    header = valtuudet.checksum_header(
        client_id="42bbe569",
        api_key="3ba56df8-88b8-4805-9b04-2f8e7a61ae8f",
        path_and_query="/service/ypa/user/register/42bbe569/010180-9026?requestId=nodeClient&endUserId=nodeEndUser",
        timestamp="2024-01-15T10:00:00+02:00",
    )
    assert header == "42bbe569 2024-01-15T10:00:00+02:00 WSGltmzbMgVDIIwr8dLiWyzim7lnLkXqdiXg/hWIVSk="


class FakeValtuudet:
    """Register, token, organizationRoles and unregister; checks the checksum header of every service call."""

    def __init__(self, httpserver, settings) -> None:
        self.base = httpserver.url_for("/valtuudet")
        settings.VALTUUDET_BASE_URL = self.base
        settings.VALTUUDET_CLIENT_ID = "kelatest"
        settings.VALTUUDET_API_KEY = API_KEY
        settings.VALTUUDET_OAUTH_PASSWORD = "oauth-password"
        settings.VALTUUDET_REQUIRED_ROLES = ["SOTE_AJANVARAUS"]
        self.roles_answer: object = [
            {"name": "Helsingin kaupunki", "identifier": "0201256-6", "complete": True, "roles": ["SOTE_AJANVARAUS"]}
        ]
        self.status = 200
        self.calls: list[str] = []
        self.bad_headers: list[str] = []
        httpserver.expect_request("/valtuudet/service/ypa/user/register/kelatest/" + TEST_CODE).respond_with_handler(
            self._service("register", {"sessionId": "session-1", "userId": "user-1"})
        )
        httpserver.expect_request("/valtuudet/oauth/token", method="POST").respond_with_handler(self._token)
        httpserver.expect_request("/valtuudet/service/ypa/api/organizationRoles/session-1").respond_with_handler(
            self._roles
        )
        httpserver.expect_request("/valtuudet/service/ypa/user/unregister/session-1").respond_with_handler(
            self._service("unregister", {})
        )

    def _check(self, request: Request) -> bool:
        client_id, timestamp, checksum = request.headers.get("X-AsiointivaltuudetAuthorization", "  ").split(" ")
        path = request.full_path.removeprefix("/valtuudet").rstrip("?")
        expected = base64.b64encode(
            hmac.new(API_KEY.encode(), f"{path} {timestamp}".encode(), hashlib.sha256).digest()
        ).decode()
        ok = client_id == "kelatest" and hmac.compare_digest(checksum, expected)
        if not ok:
            self.bad_headers.append(request.path)
        return ok

    def _service(self, name: str, body: object):
        def handler(request: Request) -> Response:
            self.calls.append(name)
            if not self._check(request):
                return Response("{}", status=401)
            return Response(json.dumps(body), status=self.status, mimetype="application/json")

        return handler

    def _token(self, request: Request) -> Response:
        self.calls.append("token")
        if request.authorization is None or request.authorization.password != "oauth-password":
            return Response("{}", status=401)
        return Response(json.dumps({"access_token": "va-token", "token_type": "bearer"}), mimetype="application/json")

    def _roles(self, request: Request) -> Response:
        self.calls.append("organizationRoles")
        if not self._check(request) or request.headers.get("Authorization") != "Bearer va-token":
            return Response("{}", status=401)
        return Response(json.dumps(self.roles_answer), status=self.status, mimetype="application/json")


@pytest.fixture
def fake(httpserver, settings) -> FakeValtuudet:
    return FakeValtuudet(httpserver, settings)


@pytest.fixture
def partner(client):
    user = UserFactory(identity_code=TEST_CODE, first_name="Maija", last_name="Meikäläinen")
    client.force_login(user)
    return user


def url(name: str, language: str = "en") -> str:
    with translation.override(language):
        return reverse(name)


def choose(client, fake: FakeValtuudet, *, language: str = "en", callback: dict | None = None):
    response = client.post(url("partners:organisation-choose", language))
    assert response.status_code == 302, response.content
    selection = urlsplit(response["Location"])
    query = {name: values[0] for name, values in parse_qs(selection.query).items()}
    assert selection.path == "/valtuudet/oauth/authorize"
    assert (query["client_id"], query["user"], query["lang"]) == ("kelatest", "user-1", language)
    assert query["redirect_uri"] == "http://testserver/valtuudet/callback/"
    return client.get("/valtuudet/callback/", callback if callback is not None else {"code": "va-code"})


def test_organisation__chosen_with_mandate_and_in_registry__goes_to_terms(client, fake, partner) -> None:
    OrganisationFactory(business_id="0201256-6", name="Helsingin kaupunki")
    response = choose(client, fake)
    assert response.status_code == 302
    assert response["Location"] == url("partners:terms")
    acting = context.acting_context(type("R", (), {"session": client.session, "user": partner, "META": {}})())
    assert (acting.organisation_business_id, acting.step) == ("0201256-6", context.Step.ORGANISATION_CHOSEN)
    event = AuditEvent.objects.get(action=AuditEvent.Action.ORGANISATION_CHOSEN)
    assert (event.organisation_business_id, event.actor) == ("0201256-6", partner)
    assert fake.bad_headers == []
    assert fake.calls == ["register", "token", "organizationRoles"]


def test_organisation__mandate_of_another_kind__refused_with_instructions(client, fake, partner) -> None:
    OrganisationFactory(business_id="0201256-6")
    fake.roles_answer[0]["roles"] = ["YLEINEN_ASIOINTI"]
    response = choose(client, fake)
    assert response.status_code == 403
    html = response.content.decode()
    assert "You do not have the mandate needed" in html
    assert "Sosiaaliturvan etuusasioiden ajanvarauksen tekeminen" in html
    assert "mandate administrator" in html
    assert 'href="https://www.suomi.fi/mandates"' in html
    event = AuditEvent.objects.get(action=AuditEvent.Action.MANDATE_MISSING)
    assert event.details == {"roles": ["YLEINEN_ASIOINTI"], "complete": True}
    assert client.get(url("partners:terms")).status_code == 302  # no organisation: the terms stay out of reach


def test_organisation__incomplete_answer__counts_as_no_mandate(client, fake, partner) -> None:
    OrganisationFactory(business_id="0201256-6")
    fake.roles_answer[0]["complete"] = False
    response = choose(client, fake)
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action=AuditEvent.Action.MANDATE_MISSING).exists()
    # Not "you have no mandate": the answer held it, but Valtuudet said its information is incomplete.
    assert "did not give complete information on your mandates" in response.content.decode()
    assert "You have no mandate" not in response.content.decode()


@pytest.mark.parametrize("registered", ["missing", "deactivated"])
def test_organisation__not_in_registry__refused_with_link_to_request(client, fake, partner, registered) -> None:
    if registered == "deactivated":
        OrganisationFactory.deactivated(business_id="0201256-6")
    response = choose(client, fake)
    assert response.status_code == 403
    assert "is not in Kela's registry" in response.content.decode()
    assert f'href="{url("registry:request")}"' in response.content.decode()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ORGANISATION_NOT_IN_REGISTRY).count() == 1
    # The answer's address carries no language and a code used once: no language links to load it again with.
    assert 'class="language-switcher"' not in response.content.decode()
    assert 'class="language-switcher"' in client.get(url("partners:work")).content.decode()


def test_organisation__cancelled_at_valtuudet__says_no_organisation_chosen(client, fake, partner) -> None:
    response = choose(client, fake, callback={"error": "access_denied"})
    assert response.status_code == 400
    assert "If no organisation was offered to you there" in response.content.decode()  # no mandate from any
    assert "No organisation was chosen" in response.content.decode()


@pytest.mark.parametrize(
    "answer",
    [
        [],
        {"not": "a list"},
        [{"name": "No identifier"}],
        [{"identifier": "0201256-6", "roles": "TJ"}],
        "<html>",
        [{"identifier": "0201256-6", "name": "Helsingin\x00kaupunki", "complete": True, "roles": ["SOTE_AJANVARAUS"]}],
        [{"identifier": "0201256-6", "name": "Helsingin kaupunki", "complete": True, "roles": ["SOTE\x00AJANVARAUS"]}],
    ],
)
def test_organisation__nonsense_from_valtuudet__unavailable_page(client, fake, partner, answer) -> None:
    fake.roles_answer = answer
    response = choose(client, fake)
    assert response.status_code == 503
    assert "Suomi.fi e-Authorizations is not available" in response.content.decode()


def test_organisation__valtuudet_unreachable__unavailable_page(client, partner, settings) -> None:
    settings.VALTUUDET_BASE_URL = "http://127.0.0.1:9/valtuudet"
    response = client.post(url("partners:organisation-choose"))
    assert response.status_code == 503
    event = AuditEvent.objects.get(action=AuditEvent.Action.ORGANISATION_CHOICE_FAILED)
    assert event.details == {"reason": "valtuudet_unavailable"}


def test_organisation__valtuudet_error_status__unavailable_page(client, fake, partner) -> None:
    fake.status = 500
    response = client.post(url("partners:organisation-choose"))
    assert response.status_code == 503


def test_organisation__language__passed_to_selection_ui(client, fake, partner) -> None:
    OrganisationFactory(business_id="0201256-6")
    response = choose(client, fake, language="sv")
    assert response["Location"] == url("partners:terms", "sv")


def test_organisation__checksum_timestamp__is_current_local_time(client, fake, partner, httpserver) -> None:
    with time_machine.travel("2026-03-29 02:30:00+02:00", tick=False):
        client.post(url("partners:organisation-choose"))
    register = next(request for request, _ in httpserver.log if "/register/" in request.path)
    _client_id, timestamp, _checksum = register.headers["X-AsiointivaltuudetAuthorization"].split(" ")
    assert timestamp == "2026-03-29T02:30:00+02:00"


def test_logout__unregisters_the_valtuudet_session(client, fake, partner) -> None:
    OrganisationFactory(business_id="0201256-6")
    choose(client, fake)
    client.post(url("partners:logout"))
    assert fake.calls[-1] == "unregister"
    assert fake.bad_headers == []


# --- The choice as a service: each outcome one audit event ----------------------------------------------------------

CALLBACK = "http://testserver/valtuudet/callback/"


def choose_in_service(acting, **kwargs) -> OrganisationDecision:
    return organisation_choose(
        acting=acting, **({"session_id": "session-1", "code": "va-code", "redirect_uri": CALLBACK} | kwargs)
    )


@pytest.mark.parametrize(
    ("setup", "decision", "action", "outcome"),
    [
        ("registered", Decision.ALLOWED, AuditEvent.Action.ORGANISATION_CHOSEN, AuditEvent.Outcome.SUCCESS),
        ("no mandate", Decision.MANDATE_MISSING, AuditEvent.Action.MANDATE_MISSING, AuditEvent.Outcome.REFUSED),
        (
            "not registered",
            Decision.NOT_IN_REGISTRY,
            AuditEvent.Action.ORGANISATION_NOT_IN_REGISTRY,
            AuditEvent.Outcome.REFUSED,
        ),
        (
            "no code",
            Decision.NO_ORGANISATION_CHOSEN,
            AuditEvent.Action.ORGANISATION_CHOICE_FAILED,
            AuditEvent.Outcome.REFUSED,
        ),
        (
            "valtuudet fails",
            Decision.VALTUUDET_UNAVAILABLE,
            AuditEvent.Action.ORGANISATION_CHOICE_FAILED,
            AuditEvent.Outcome.ERROR,
        ),
    ],
)
def test_organisation__choose__decided_and_recorded_as_one_event(fake, setup, decision, action, outcome) -> None:
    partner = UserFactory(identity_code=TEST_CODE)
    if setup != "not registered":
        OrganisationFactory(business_id="0201256-6", name="Helsingin kaupunki")
    if setup == "no mandate":
        fake.roles_answer[0]["roles"] = ["YLEINEN_ASIOINTI"]
    if setup == "valtuudet fails":
        fake.status = 500

    decided = choose_in_service(ActingContext(user=partner), **({"code": ""} if setup == "no code" else {}))

    assert decided.decision is decision
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.actor) == (action, outcome, partner)
    if decision in (Decision.ALLOWED, Decision.MANDATE_MISSING, Decision.NOT_IN_REGISTRY):
        assert (decided.business_id, event.organisation_business_id) == ("0201256-6", "0201256-6")


def test_organisation__choose_another_with_the_customer_locked__refused_and_nothing_recorded(fake) -> None:
    OrganisationFactory(business_id="0201256-6")
    acting = acting_for(UserFactory(identity_code=TEST_CODE), customer=CustomerFactory())

    with pytest.raises(CustomerLockedError):
        choose_in_service(acting)

    assert not AuditEvent.objects.exists()


def test_organisation__chosen_after_another__recorded_for_the_new_one(fake) -> None:
    OrganisationFactory(business_id="0201256-6", name="Helsingin kaupunki")
    earlier = OrganisationFactory(business_id="0211675-2", name="Tampereen kaupunki")
    fake.roles_answer[0]["name"] = ""  # the registry names it
    acting = acting_for(UserFactory(identity_code=TEST_CODE), organisation=earlier)

    choose_in_service(acting)

    event = AuditEvent.objects.get()
    assert (event.organisation_business_id, event.organisation_name) == ("0201256-6", "Helsingin kaupunki")
