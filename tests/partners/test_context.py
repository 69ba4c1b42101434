"""The acting context: steps in order, one customer per session, idle and absolute timeouts."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from django.utils import translation

from bookings.models import Customer
from kelabooking import clock
from partners import context
from partners.context import CustomerLockedError, Step
from partners.models import AuditEvent
from registry.models import Organisation
from tests.acting import partner_request, sign_in
from tests.factories import UserFactory
from tests.partners.provider import OTHER_TEST_CODE, TEST_CODE

pytestmark = pytest.mark.django_db


def url(name: str, language: str = "en") -> str:
    with translation.override(language):
        return reverse(name)


@pytest.fixture
def partner(client):
    user = UserFactory(identity_code=TEST_CODE, first_name="Maija", last_name="Meikäläinen")
    client.force_login(user)
    return user


HELSINKI = Organisation(business_id="0201256-6", name="Helsingin kaupunki")


@pytest.mark.parametrize(
    ("page", "acting", "expected"),
    [
        ("partners:work", None, "partners:login"),
        ("partners:terms", None, "partners:login"),
        ("bookings:customer", None, "partners:login"),
    ],
)
def test_step__anonymous__redirected_to_login(client, page, acting, expected) -> None:
    response = client.get(url(page))
    assert (response.status_code, response["Location"]) == (302, url(expected))


def test_step__staff_user_without_identity_code__is_not_a_partner(client) -> None:
    client.force_login(UserFactory(is_staff=True))
    assert client.get(url("partners:work"))["Location"] == url("partners:login")


@pytest.mark.parametrize(
    ("page", "organisation", "expected"),
    [
        ("partners:terms", None, "partners:work"),
        ("bookings:customer", None, "partners:work"),
        ("bookings:customer", HELSINKI, "partners:terms"),
    ],
)
def test_step__page_reached_too_early__redirects_to_missing_step(client, partner, page, organisation, expected):
    sign_in(client, partner, organisation=organisation, terms=False)
    response = client.get(url(page))
    assert (response.status_code, response["Location"]) == (302, url(expected))


def test_step__htmx_request_too_early__gets_hx_redirect(client, partner) -> None:
    response = client.get(url("bookings:customer"), HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert response["HX-Redirect"] == url("partners:work")


def test_terms__accept__requires_the_checkbox_then_unlocks_the_customer_step(client, partner) -> None:
    sign_in(client, partner, organisation=HELSINKI, terms=False)
    page = client.get(url("partners:terms"))
    assert page.status_code == 200
    assert "acting for Helsingin kaupunki (0201256-6)" in page.content.decode()
    refused = client.post(url("partners:terms"), {})
    assert refused.status_code == 200
    assert "Confirm the customer&#x27;s permission" in refused.content.decode()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.TERMS_ACCEPTED).exists()
    accepted = client.post(url("partners:terms"), {"consent": "on"})
    assert accepted["Location"] == url("bookings:customer")
    assert client.get(url("bookings:customer")).status_code == 200
    event = AuditEvent.objects.get(action=AuditEvent.Action.TERMS_ACCEPTED)
    assert (event.actor, event.organisation_business_id, event.organisation_name) == (
        partner,
        "0201256-6",
        "Helsingin kaupunki",
    )


def test_terms__translated_in_finnish_and_swedish(client, partner) -> None:
    sign_in(client, partner, organisation=HELSINKI, terms=False)
    finnish = client.get(url("partners:terms", "fi")).content.decode()
    swedish = client.get(url("partners:terms", "sv")).content.decode()
    assert "Terms of use for work-related matters" not in finnish + swedish
    assert "<h1>" in finnish
    assert "<h1>" in swedish


def test_lock_customer__second_customer__refused(client, partner) -> None:
    sign_in(client, partner, organisation=HELSINKI)
    request = partner_request(client.session, partner)
    first = Customer.objects.create(identity_code=OTHER_TEST_CODE)
    second = Customer.objects.create(identity_code="131052-308T")
    context.lock_customer(request, first)
    context.lock_customer(request, first)  # the same one again is fine
    with pytest.raises(CustomerLockedError):
        context.lock_customer(request, second)
    assert context.acting_context(request).customer_id == first.pk
    assert context.acting_context(request).step == Step.CUSTOMER_LOCKED


def test_lock_customer__before_terms__refused(client, partner) -> None:
    sign_in(client, partner, organisation=HELSINKI, terms=False)
    with pytest.raises(PermissionError):
        context.lock_customer(
            partner_request(client.session, partner), Customer.objects.create(identity_code=TEST_CODE)
        )


def test_new_customer__logs_out_and_starts_fresh_identification(client, partner) -> None:
    sign_in(client, partner, organisation=HELSINKI)
    assert client.get(url("partners:new-customer")).status_code == 405
    response = client.post(url("partners:new-customer"))
    assert response["Location"] == url("partners:login") + "?prompt=login"
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LOGOUT, actor=partner).exists()


def test_session__idle_30_minutes__ends_with_notice_and_audit(client, partner) -> None:
    sign_in(client, partner, organisation=HELSINKI, terms=False)
    with time_machine.travel(clock.now(), tick=False) as traveller:
        assert client.get(url("partners:terms")).status_code == 200
        traveller.shift(dt.timedelta(minutes=29))
        assert client.get(url("partners:terms")).status_code == 200  # activity slides the window
        traveller.shift(dt.timedelta(minutes=29))
        assert client.get(url("partners:terms")).status_code == 200
        traveller.shift(dt.timedelta(minutes=31))
        response = client.get(url("partners:terms"))
    assert (response.status_code, response["Location"]) == (302, url("partners:session-expired"))
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(action=AuditEvent.Action.SESSION_EXPIRED)
    assert (event.actor, event.organisation_business_id) == (partner, "0201256-6")


def test_session__idle_htmx_post__gets_hx_redirect(client, partner) -> None:
    with time_machine.travel(clock.now(), tick=False) as traveller:
        client.get(url("partners:work"))
        traveller.shift(dt.timedelta(minutes=31))
        response = client.post(url("partners:organisation-choose"), HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert response["HX-Redirect"] == url("partners:session-expired")


def test_session__absolute_lifetime_10_hours__ends_even_when_active(client, partner) -> None:
    with time_machine.travel(clock.now(), tick=False) as traveller:
        for _ in range(21):
            assert client.get(url("partners:work")).status_code == 200
            traveller.shift(dt.timedelta(minutes=29))
        response = client.get(url("partners:work"))
    assert response["Location"] == url("partners:session-expired")
