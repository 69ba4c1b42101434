"""One display form of a telephone number wherever a person reads it; E.164 wherever it is stored."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import translation

from bookings.forms import ContactForm
from bookings.models import Booking, Customer, ServiceLine, Slot
from kelabooking import clock
from kelabooking.phone import format_phone
from tests.acting import sign_in
from tests.factories import CustomerFactory, OrganisationFactory, UserFactory
from tests.partners.provider import TEST_CODE

pytestmark = pytest.mark.django_db


def url(name: str, **kwargs) -> str:
    with translation.override("en"):
        return reverse(name, kwargs=kwargs or None)


@pytest.fixture
def partner(client):
    """A partner past the terms, acting for an organisation, as the journey tests sign one in."""
    organisation = OrganisationFactory(business_id="0201256-6", name="Helsingin kaupunki")
    partner = UserFactory(identity_code=TEST_CODE, first_name="Helena", last_name="Virtanen")
    sign_in(client, partner, organisation=organisation)


@pytest.fixture
def slot() -> Slot:
    line = ServiceLine.objects.create(name_fi="Asumisen tuet", name_sv="Bostadsstöd", name_en="Housing benefits")
    local = clock.localnow().replace(hour=10, minute=0, second=0, microsecond=0) + dt.timedelta(days=2)
    return Slot.objects.create(
        service_line=line, language="fi", starts_at=local, ends_at=local + dt.timedelta(minutes=45), capacity=2
    )


def open_and_hold(client, customer: Customer, slot: Slot) -> None:
    client.post(url("bookings:customer"), {"identity_code": customer.identity_code})
    client.post(
        url("bookings:matter"), {"service_line": slot.service_line_id, "language": "fi", "interpreter_needed": "no"}
    )
    client.post(url("bookings:time"), {"slot": slot.pk})


def shown_phone(html: str, term: str) -> str:
    """The text of the summary entry after <dt>term</dt>, without its "Change" link."""
    match = re.search(rf"<dt>{re.escape(term)}</dt><dd>([^<]*)", html)
    assert match, f"no {term!r} entry"
    return match.group(1).strip()


def phone_field_value(html: str) -> str:
    match = re.search(r'<input[^>]*name="phone"[^>]*>', html)
    assert match
    return re.search(r'value="([^"]*)"', match.group(0)).group(1)


@pytest.mark.parametrize(
    ("stored", "shown"),
    [("+358401110001", "040 1110001"), ("+46701234567", "+46 70 123 45 67"), ("+35891234567", "09 1234567")],
)
def test_format_phone__national_for_finnish_numbers_international_otherwise(stored, shown) -> None:
    assert format_phone(stored) == shown


@pytest.mark.parametrize("odd", ["", "0401110001", "+3584", "not a number"])
def test_format_phone__anything_but_a_valid_e164_number__is_shown_as_it_is(odd) -> None:
    assert format_phone(odd) == odd


def test_contact_form__stored_number_shown_formatted__typed_number_stored_as_e164() -> None:
    assert ContactForm(initial={"phone": "+358401110001"}, names_required=False)["phone"].value() == "040 1110001"
    typed = ContactForm({"phone": "040 111 0001"}, names_required=False)
    assert typed.is_valid(), typed.errors
    assert typed.cleaned_data["phone"] == "+358401110001"


def test_phone__overview_and_contact_field__show_the_register_number_in_the_same_form(client, partner, slot) -> None:
    customer = CustomerFactory(phone="+358401110001")
    open_and_hold(client, customer, slot)

    overview = client.get(url("bookings:overview")).content.decode()
    contact = client.get(url("bookings:contact")).content.decode()

    assert shown_phone(overview, "Telephone") == "040 1110001"
    assert phone_field_value(contact) == "040 1110001"
    assert "+358401110001" not in overview + contact


@pytest.mark.parametrize(("typed", "shown", "stored"), [("+46 70 1234567", "+46 70 123 45 67", "+46701234567")])
def test_phone__typed_number__same_form_on_check_back_in_the_field_and_on_the_booking(
    client, partner, slot, typed, shown, stored
) -> None:
    customer = CustomerFactory.not_in_register()
    open_and_hold(client, customer, slot)
    client.post(url("bookings:contact"), {"phone": typed, "first_name": "Uusi", "last_name": "Asiakas"})

    check = client.get(url("bookings:check")).content.decode()
    assert shown_phone(check, "Telephone") == shown
    assert phone_field_value(client.get(url("bookings:contact")).content.decode()) == shown  # back to change it

    hold = re.search(r'name="hold" value="([^"]+)"', check).group(1)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', check).group(1)
    done = client.post(url("bookings:check"), {"hold": hold, "idempotency_key": key}, follow=True).content.decode()
    booking = Booking.objects.get(status=Booking.Status.CONFIRMED)
    assert booking.contact_phone == stored
    assert shown_phone(done, "Kela calls") == shown


def test_admin__message_list_and_registry_export__phones_in_the_display_form(superuser_client) -> None:
    from kelabooking.models import Message

    Message.objects.create(
        key="phone-form",
        kind=Booking.MessageKind.CONFIRMATION,
        channel=Message.Channel.SMS,
        recipient="+358401110001",
        language="fi",
        next_attempt_at=clock.now(),
    )
    OrganisationFactory(phone="+358501234567")
    messages = superuser_client.get(reverse("admin:kelabooking_message_changelist")).content.decode()
    assert "040 1110001" in messages
    assert "+358401110001" not in messages
    export = superuser_client.get(reverse("admin:registry_organisation_export")).content.decode("utf-8-sig")
    assert "050 1234567" in export
    assert "+358501234567" not in export
