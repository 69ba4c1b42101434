"""The check step is a read: its key for the confirm is made with the hold, so showing (and reloading) the check page
leaves the session as it was (issue 26)."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session

from bookings.models import Booking, ServiceLine
from tests.acting import sign_in
from tests.bookings.test_journey import NEW_CODE, confirm_form, open_customer, slot_at, url
from tests.bookings.test_journey import customer as customer  # noqa: F401 - fixtures
from tests.bookings.test_journey import line as line  # noqa: F401
from tests.bookings.test_journey import organisation as organisation  # noqa: F401
from tests.bookings.test_journey import partner as partner  # noqa: F401
from tests.factories import OrganisationFactory

pytestmark = pytest.mark.django_db


def _stored(client) -> tuple[str, object]:
    row = Session.objects.get(session_key=client.session.session_key)
    return row.session_data, row.expire_date


def test_check_page__shown_and_reloaded__writes_nothing_to_the_session_and_keeps_its_key(
    client, partner, customer, line
) -> None:
    open_customer(client)
    slot = slot_at(line)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    assert client.post(url("bookings:time"), {"slot": slot.pk})["Location"] == url("bookings:contact")
    client.post(url("bookings:contact"), {"phone": "040 123 4567", "email": ""})
    before = _stored(client)

    first, again = client.get(url("bookings:check")), client.get(url("bookings:check"))

    assert first.status_code == again.status_code == 200
    assert _stored(client) == before
    assert confirm_form(first) == confirm_form(again)
    confirmed = client.post(url("bookings:check"), confirm_form(first))
    booking = Booking.objects.get(status=Booking.Status.CONFIRMED)
    assert confirmed["Location"] == url("bookings:done", reference=booking.reference)
    assert str(booking.idempotency_key) == confirm_form(first)["idempotency_key"]


def test_check_page__a_new_hold__gets_a_new_key(client, partner, customer, line) -> None:
    open_customer(client)
    first_slot, second_slot = slot_at(line, hour=10), slot_at(line, hour=12)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": first_slot.pk})
    client.post(url("bookings:contact"), {"phone": "040 123 4567", "email": ""})
    first = confirm_form(client.get(url("bookings:check")))
    client.post(url("bookings:time"), {"slot": second_slot.pk})
    second = confirm_form(client.get(url("bookings:check")))

    assert first["hold"] != second["hold"]
    assert first["idempotency_key"] != second["idempotency_key"]


def test_hold__picking_a_time__writes_nothing_to_the_session(client, partner, customer, line) -> None:
    """Issue 26: the hold's POST saved the session (the draft decrypted and encrypted again, the row updated) only to
    remember the confirm's key; the key is now made from the hold itself, so picking a time writes only the hold."""
    open_customer(client)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": slot_at(line, hour=10).pk})
    client.post(url("bookings:contact"), {"phone": "040 123 4567", "email": ""})
    before = _stored(client)

    later = slot_at(line, hour=12)

    assert client.post(url("bookings:time"), {"slot": later.pk})["Location"] == url("bookings:contact")

    assert _stored(client) == before
    assert Booking.objects.get(status=Booking.Status.HELD).slot == later
    confirm_form(client.get(url("bookings:check")))  # and the check page has its form


def test_confirm__an_earlier_bookings_form_again_under_a_new_draft__its_page_not_the_confirmation(
    client, partner, customer, line
) -> None:
    """The confirmation (which may show what was typed, also for a customer with non-disclosure) follows only the
    confirm of this draft's booking: a repeat of an older booking's form returns that booking as its own page."""
    open_customer(client)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": slot_at(line).pk})
    client.post(url("bookings:contact"), {"phone": "040 123 4567", "email": ""})
    form = confirm_form(client.get(url("bookings:check")))
    done = client.post(url("bookings:check"), form)
    assert "The time has been booked" in client.get(done["Location"]).content.decode()
    other = ServiceLine.objects.create(name_fi="Työttömyysturva", name_sv="Utkomstskydd", name_en="Unemployment")
    client.post(url("bookings:matter"), {"service_line": other.pk, "language": "fi", "interpreter_needed": "no"})

    again = client.post(url("bookings:check"), form)

    assert again["Location"] == done["Location"]
    page = client.get(again["Location"]).content.decode()
    assert "The time has been booked" not in page
    assert "Booking " + Booking.objects.get().reference in page


def test_confirm__this_partners_earlier_form_for_another_customer__refused_not_that_booking(
    client, partner, customer, line, organisation
) -> None:
    """A confirm's key returns the booking it made only in the context it was made in: after a new sign-in for another
    customer, the old form is refused (never a redirect to the first customer's booking)."""
    open_customer(client)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": slot_at(line).pk})
    client.post(url("bookings:contact"), {"phone": "040 123 4567", "email": ""})
    form = confirm_form(client.get(url("bookings:check")))
    first = client.post(url("bookings:check"), form)
    booking = Booking.objects.get(status=Booking.Status.CONFIRMED)
    assert first["Location"] == url("bookings:done", reference=booking.reference)
    sign_in(client, partner, organisation=organisation)  # a new identification: the next customer
    open_customer(client, NEW_CODE)

    again = client.post(url("bookings:check"), form)

    assert booking.reference not in again.get("Location", "") + again.content.decode()
    assert Booking.objects.filter(status=Booking.Status.CONFIRMED).count() == 1


def test_check_page__a_hold_made_under_another_organisation__is_not_this_contexts(
    client, partner, customer, line
) -> None:
    """A partner's hold counts for the organisation it was made under: after a new sign-in for another organisation
    with the same customer, the steps do not offer that hold (whose confirm would be refused as made for another
    organisation, and the partner sent back to the check page again and again), but send the partner to pick a time."""
    open_customer(client)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": slot_at(line, hour=10).pk})
    client.post(url("bookings:contact"), {"phone": "040 123 4567", "email": ""})
    assert client.get(url("bookings:check")).status_code == 200
    other = OrganisationFactory(business_id="0204819-8", name="Espoon kaupunki")
    sign_in(client, partner, organisation=other)
    open_customer(client)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})

    assert client.get(url("bookings:check"))["Location"] == url("bookings:time")
    assert client.get(url("bookings:contact"))["Location"] == url("bookings:time")
    later = slot_at(line, hour=12)
    assert client.post(url("bookings:time"), {"slot": later.pk})["Location"] == url("bookings:contact")
    client.post(url("bookings:contact"), {"phone": "040 123 4567", "email": ""})
    confirmed = client.post(url("bookings:check"), confirm_form(client.get(url("bookings:check"))))

    booking = Booking.objects.get(status=Booking.Status.CONFIRMED)
    assert confirmed["Location"] == url("bookings:done", reference=booking.reference)
    assert (booking.slot, booking.organisation) == (later, other)
