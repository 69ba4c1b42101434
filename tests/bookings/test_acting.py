"""The acting context through the partner's pages: one customer per login, the organisation asked at every step, and
the confirm confirming what the partner checked. Each of these got through before the services checked the context."""

from __future__ import annotations

import pytest
from django.utils import timezone

from bookings.models import Booking, Customer
from registry.models import Organisation
from tests.acting import acting_of
from tests.bookings.test_journey import CUSTOMER_CODE, confirm_form, open_customer, slot_at, url
from tests.bookings.test_journey import customer as customer  # noqa: F401,PLC0414 - fixtures
from tests.bookings.test_journey import line as line  # noqa: F401,PLC0414
from tests.bookings.test_journey import organisation as organisation  # noqa: F401,PLC0414
from tests.bookings.test_journey import partner as partner  # noqa: F401,PLC0414
from tests.partners.test_valtuudet import FakeValtuudet

pytestmark = pytest.mark.django_db

OTHER_CODE = "010101-123N"


def locked_customer_id(client) -> int | None:
    return acting_of(client).customer_id


def to_check_page(client, line, slot) -> dict[str, str]:
    client.post(
        url("bookings:matter"), {"service_line": line.pk, "language": slot.language, "interpreter_needed": "no"}
    )
    client.post(url("bookings:time"), {"slot": slot.pk})
    client.post(url("bookings:contact"), {"phone": "040 123 4567"})
    return confirm_form(client.get(url("bookings:check")))


def test_customer__organisation_or_terms_again_after_the_customer__customer_stays_locked(
    client, partner, customer, organisation, httpserver, settings
) -> None:
    """Posting the organisation choice again used to reset the customer, so a second customer's identity code was
    then accepted in the same login."""
    fake = FakeValtuudet(httpserver, settings)
    other = Organisation.objects.create(business_id="0211675-2", name="Tampereen kaupunki")
    fake.roles_answer = [
        {"name": other.name, "identifier": other.business_id, "complete": True, "roles": ["SOTE_AJANVARAUS"]}
    ]
    # A tab opens the organisation choice before the customer is chosen, and is left on the selection page.
    assert client.post(url("partners:organisation-choose")).status_code == 302
    open_customer(client)
    first = locked_customer_id(client)

    assert client.post(url("partners:organisation-choose"))["Location"] == url("bookings:overview")
    assert client.post(url("partners:terms"), {"consent": "on"})["Location"] == url("bookings:overview")
    assert open_customer(client, OTHER_CODE)["Location"] == url("bookings:overview")
    # Valtuudet's callback from that tab, choosing another organisation, changes nothing either.
    response = client.get("/valtuudet/callback/", {"code": "va-code"})

    assert fake.calls == ["register", "token", "organizationRoles"]
    assert response.status_code == 302
    assert response["Location"].endswith("/customer/overview/")
    assert locked_customer_id(client) == first
    assert acting_of(client).organisation_business_id == organisation.business_id
    assert not Customer.objects.with_identity_code(OTHER_CODE).exists()


def test_booking__organisation_removed_from_the_registry_meanwhile__every_step_refused(
    client, partner, customer, organisation, line
) -> None:
    """The registry used to be asked only when the organisation was chosen: a deactivated organisation's signed-in
    partner could still hold and confirm times."""
    open_customer(client)
    held_slot, other_slot = slot_at(line), slot_at(line, hour=13)
    form = to_check_page(client, line, held_slot)
    Organisation.objects.filter(pk=organisation.pk).update(is_active=False, removed_at=timezone.now())

    for response in (
        client.get(url("bookings:overview")),
        client.get(url("bookings:contact")),  # it pre-fills the register's phone and e-mail
        client.get(url("bookings:check")),
        client.post(url("bookings:time"), {"slot": other_slot.pk}),
        client.post(url("bookings:check"), form),
    ):
        assert response.status_code == 403
        assert "not in Kela's registry" in response.content.decode()
    hold = Booking.objects.get()
    assert (hold.status, hold.slot) == (Booking.Status.HELD, held_slot)


def test_booking__confirm_from_a_tab_whose_hold_was_replaced__refused_and_current_hold_shown(
    client, partner, customer, line
) -> None:
    """Tab 1's check page showed time X, tab 2 then picked Y; confirming in tab 1 used to book Y."""
    open_customer(client)
    first, second = slot_at(line, hour=10), slot_at(line, hour=13)
    tab_one = to_check_page(client, line, first)
    client.post(url("bookings:time"), {"slot": second.pk})  # tab 2

    response = client.post(url("bookings:check"), tab_one)

    assert response["Location"] == url("bookings:check")
    page = client.get(response["Location"]).content.decode()
    assert "no longer the one held for you" in page
    assert timezone.localtime(second.starts_at).strftime("%H:%M") in page
    assert confirm_form(client.get(url("bookings:check")))["hold"] != tab_one["hold"]
    assert not Booking.objects.filter(status=Booking.Status.CONFIRMED).exists()
    assert Booking.objects.get().slot == second


def test_booking__same_time_picked_twice__one_hold_and_the_contact_page(client, partner, customer, line) -> None:
    """A double click on one time used to land one of the two requests back on the time page."""
    open_customer(client)
    slot = slot_at(line)
    client.post(
        url("bookings:matter"), {"service_line": line.pk, "language": slot.language, "interpreter_needed": "no"}
    )

    responses = [client.post(url("bookings:time"), {"slot": slot.pk}) for _ in range(2)]

    assert [response["Location"] for response in responses] == [url("bookings:contact")] * 2
    assert client.get(url("bookings:contact")).status_code == 200
    assert Booking.objects.filter(status=Booking.Status.HELD).count() == 1


def test_booking__confirmed__stored_for_the_organisation_acted_for(client, partner, customer, organisation, line):
    open_customer(client)
    response = client.post(url("bookings:check"), to_check_page(client, line, slot_at(line)))
    booking = Booking.objects.get(customer__in=Customer.objects.with_identity_code(CUSTOMER_CODE))
    assert response["Location"] == url("bookings:done", reference=booking.reference)
    assert booking.organisation == organisation
    assert booking.audit_events.get().organisation_business_id == organisation.business_id
