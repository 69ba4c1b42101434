"""The contact details typed for a booking (phone, e-mail, description of the matter), through the partner pages of
two organisations: only the organisation that made the booking sees them, and for a customer with non-disclosure only
on the confirmation that follows the typing (DESIGN.md §4 rule 7). Another organisation may still check, move and
cancel the locked customer's bookings; their pages say where each was made. And the booking draft that holds the
typing between the steps is never in the session row in clear."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.test import Client, override_settings

from bookings.models import Booking, Customer
from kelabooking import clock, crypto
from partners import context
from partners.models import AuditEvent
from registry.models import Organisation
from tests.acting import partner_request, sign_in
from tests.bookings.test_caseworker_flow import content, text
from tests.bookings.test_journey import CUSTOMER_CODE, book, confirm_form, open_customer, slot_at, url
from tests.bookings.test_journey import customer as customer  # noqa: F401 - fixtures
from tests.bookings.test_journey import line as line  # noqa: F401
from tests.bookings.test_journey import organisation as organisation  # noqa: F401
from tests.bookings.test_journey import partner as partner  # noqa: F401
from tests.factories import PartnerFactory, UserFactory

pytestmark = pytest.mark.django_db

SANNI = "030301A903R"  # the demo customer with non-disclosure (bookings/demo.py)
# What Helena types for the booking, as the customer gives it.
TYPED = {"phone": "040 765 4321", "email": "sanni.itse@example.org", "description": "Toimeentulotuen päätös viipyy"}
# Every way a page could show the typed phone, and the rest of what was typed.
TYPED_SHOWN = ("+358407654321", "0407654321", "040 7654321", "040 765 4321", TYPED["email"], TYPED["description"])


def typed_on(page: str) -> list[str]:
    """What of the typed contact details the page shows, in its source."""
    return [value for value in TYPED_SHOWN if value in page]


@pytest.fixture
def sanni() -> Customer:
    return Customer.objects.create(
        identity_code=SANNI,
        first_name="Sanni",
        last_name="Suojattu",
        phone="+358401110003",
        email="sanni.suojattu@example.com",
        non_disclosure=True,
    )


@pytest.fixture
def tuomas() -> Client:
    """Tuomas, acting for Tampere in his own browser."""
    tampere = Organisation.objects.create(business_id="0211675-2", name="Tampereen kaupunki")
    browser = Client()
    sign_in(
        browser,
        UserFactory(identity_code="020594X903P", first_name="Tuomas", last_name="Mäkinen"),
        organisation=tampere,
    )
    return browser


def helena_books(client, line, code: str) -> tuple[Booking, str]:
    """Helena opens the customer, books with the typed contact details and confirms: the booking and the
    confirmation page."""
    open_customer(client, code)
    response, _key = book(client, line, slot_at(line), contact=TYPED)
    booking = Booking.objects.get(status=Booking.Status.CONFIRMED)
    assert response["Location"] == url("bookings:done", reference=booking.reference)
    return booking, content(client.get(response["Location"]))


def summary(page: str) -> dict[str, str]:
    """The booking page's summary, as its rows read: {"Booked by": "Helsingin kaupunki", …}."""
    rows = re.findall(r"<dt>(.*?)</dt>\s*<dd>(.*?)</dd>", page, re.S)
    return {text(label): text(value) for label, value in rows}


def shown_events(booking: Booking) -> list[str]:
    """Who the audit trail says was shown the booking's typed contact details, in order."""
    events = AuditEvent.objects.filter(action=AuditEvent.Action.CONTACT_DETAILS_SHOWN, booking=booking)
    return list(events.order_by("pk").values_list("organisation_name", flat=True))


# --- Another organisation ------------------------------------------------------------------------------------------


def test_booking_contacts__non_disclosure_booked_by_helsinki__tampere_sees_where_it_was_made_not_the_phone(
    client, partner, sanni, line, tuomas
) -> None:
    """The finding: Tuomas, opening Sanni after Helena had booked for her, read "Kela calls 040 7654321"."""
    booking, _confirmation = helena_books(client, line, SANNI)

    open_customer(tuomas, SANNI)
    pages = {
        name: content(tuomas.get(url(name, reference=booking.reference)))
        for name in ("bookings:done", "bookings:move", "bookings:cancel")
    }
    pages["bookings:overview"] = content(tuomas.get(url("bookings:overview")))
    pages["bookings:matter"] = content(tuomas.get(url("bookings:matter")))  # it names her upcoming time
    for name, page in pages.items():
        assert typed_on(page) == [], name
    assert summary(pages["bookings:done"])["Booked by"] == "Helsingin kaupunki"
    assert "The customer's contact details are protected" in text(pages["bookings:done"])
    assert "Booked by Helsingin kaupunki" in text(pages["bookings:overview"])
    assert shown_events(booking) == ["Helsingin kaupunki"]  # Helena's confirmation alone


def test_booking_contacts__non_disclosure__the_booking_organisation_sees_them_only_on_the_confirmation(
    client, partner, sanni, line
) -> None:
    booking, confirmation = helena_books(client, line, SANNI)
    assert "The time has been booked" in confirmation
    assert typed_on(confirmation) == ["040 7654321", TYPED["email"], TYPED["description"]]

    reopened = content(client.get(url("bookings:done", reference=booking.reference)))
    assert typed_on(reopened) == []
    assert "The customer's contact details are protected" in text(reopened)
    assert typed_on(content(client.get(url("bookings:overview")))) == []
    # Submitting the old confirm form again finds the same booking, and shows its page, not the confirmation again.
    again = client.post(url("bookings:check"), {"hold": booking.pk, "idempotency_key": str(booking.idempotency_key)})
    assert again["Location"] == url("bookings:done", reference=booking.reference)
    assert typed_on(content(client.get(again["Location"]))) == []
    assert shown_events(booking) == ["Helsingin kaupunki"]  # recorded once: when they were shown


def test_booking_contacts__ordinary_customer__the_booking_organisation_sees_them_another_only_where_it_was_made(
    client, partner, customer, organisation, line, tuomas
) -> None:
    booking, confirmation = helena_books(client, line, CUSTOMER_CODE)
    assert typed_on(confirmation) == ["040 7654321", TYPED["email"], TYPED["description"]]
    reopened = content(client.get(url("bookings:done", reference=booking.reference)))
    assert typed_on(reopened) == ["040 7654321", TYPED["email"], TYPED["description"]]
    # A colleague acting for the same organisation sees them too: the rule is the organisation's.
    colleague = Client()
    sign_in(colleague, PartnerFactory(first_name="Hanna"), organisation=organisation)
    open_customer(colleague, CUSTOMER_CODE)
    assert typed_on(content(colleague.get(url("bookings:done", reference=booking.reference)))) != []

    open_customer(tuomas, CUSTOMER_CODE)
    elsewhere = content(tuomas.get(url("bookings:done", reference=booking.reference)))
    assert typed_on(elsewhere) == []
    assert summary(elsewhere)["Booked by"] == "Helsingin kaupunki"
    assert "shown only to the organisation that made it" in text(elsewhere)
    assert shown_events(booking) == ["Helsingin kaupunki"] * 3  # confirmation, reopening, colleague; not Tampere


@pytest.mark.parametrize(
    ("channel", "made"), [("customer_online", "The customer online"), ("kela_phone_service", "Kela's phone service")]
)
def test_booking_contacts__booked_online_or_by_kela__page_says_where_without_contacts(
    client, partner, customer, line, channel, made
) -> None:
    booking = Booking.objects.create(
        reference="WEB-2345",
        slot=slot_at(line),
        customer=customer,
        status=Booking.Status.CONFIRMED,
        confirmed_at=clock.now(),
        channel=channel,
        contact_phone="+358407654321",
        contact_email=TYPED["email"],
        description=TYPED["description"],
    )
    open_customer(client)
    page = content(client.get(url("bookings:done", reference=booking.reference)))
    assert typed_on(page) == []
    assert summary(page)["Booked by"] == made
    assert shown_events(booking) == []


# --- Another organisation still checks, moves and cancels at the customer's request -------------------------------


def test_booking_contacts__tampere_moves_helsinkis_booking_for_the_locked_customer__moved_contacts_still_hidden(
    client, partner, sanni, line, tuomas
) -> None:
    booking, _confirmation = helena_books(client, line, SANNI)
    later = slot_at(line, days=3)
    open_customer(tuomas, SANNI)

    response = tuomas.post(url("bookings:move", reference=booking.reference), {"slot": later.pk})

    assert response["Location"] == url("bookings:done", reference=booking.reference)
    moved = content(tuomas.get(response["Location"]))
    assert "has a new time" in moved
    assert typed_on(moved) == []
    assert summary(moved)["Booked by"] == "Helsingin kaupunki"
    booking.refresh_from_db()
    assert (booking.slot, booking.status, booking.contact_phone) == (later, Booking.Status.CONFIRMED, "+358407654321")


def test_booking_contacts__tampere_cancels_helsinkis_booking_for_the_locked_customer__cancelled_contacts_hidden(
    client, partner, sanni, line, tuomas
) -> None:
    booking, _confirmation = helena_books(client, line, SANNI)
    open_customer(tuomas, SANNI)

    response = tuomas.post(url("bookings:cancel", reference=booking.reference), {"reason": "Asiakas pyysi"})

    assert response["Location"] == url("bookings:overview")
    overview = content(tuomas.get(response["Location"]))
    assert f"The booking {booking.reference} has been cancelled." in overview
    assert typed_on(overview) == []
    assert typed_on(content(tuomas.get(url("bookings:done", reference=booking.reference)))) == []
    booking.refresh_from_db()
    assert (booking.status, booking.cancelled_by.first_name) == (Booking.Status.CANCELLED, "Tuomas")


def test_cancellation__helsinki_cancels_with_a_reason__tampere_sees_when_not_who_or_why(
    client, partner, customer, line, tuomas
) -> None:
    """The finding: another organisation's partner read the name of the caseworker who cancelled and the reason she
    typed ("Cancelled on … by Helena Virtanen: <reason>") in the customer's history and on the booking's page."""
    booking, _confirmation = helena_books(client, line, CUSTOMER_CODE)
    reason = "Asiakas muuttaa Ruotsiin"
    client.post(url("bookings:cancel", reference=booking.reference), {"reason": reason})
    open_customer(tuomas, CUSTOMER_CODE)

    for page in (tuomas.get(url("bookings:overview")), tuomas.get(url("bookings:done", reference=booking.reference))):
        shown = text(content(page))
        assert "Cancelled on" in shown
        assert reason not in shown
        assert "Helena" not in shown
        assert "Virtanen" not in shown
    # Helsinki, which made the booking, still reads who cancelled it and why.
    own = text(content(client.get(url("bookings:done", reference=booking.reference))))
    assert "by Helena Virtanen: " + reason in own


def test_cancellation__tampere_cancels_helsinkis_booking__the_canceller_sees_her_reason_helsinki_too(
    client, partner, customer, line, tuomas
) -> None:
    booking, _confirmation = helena_books(client, line, CUSTOMER_CODE)
    open_customer(tuomas, CUSTOMER_CODE)
    tuomas.post(url("bookings:cancel", reference=booking.reference), {"reason": "Asiakas pyysi"})

    assert "by Tuomas Mäkinen: Asiakas pyysi" in text(content(tuomas.get(url("bookings:overview"))))
    assert "by Tuomas Mäkinen: Asiakas pyysi" in text(content(client.get(url("bookings:overview"))))


def test_cancellation__by_kela__every_organisation_reads_kela_and_no_reason_of_another(
    client, partner, customer, line, tuomas
) -> None:
    booking, _confirmation = helena_books(client, line, CUSTOMER_CODE)
    staff = UserFactory(is_staff=True, identity_code="", first_name="Kaisa", last_name="Kelalainen")
    Booking.objects.filter(pk=booking.pk).update(
        status=Booking.Status.CANCELLED, cancelled_at=clock.now(), cancelled_by=staff, cancellation_reason="Päällekkäin"
    )
    open_customer(tuomas, CUSTOMER_CODE)

    shown = text(content(tuomas.get(url("bookings:done", reference=booking.reference))))
    assert "by Kela" in shown
    assert "Kaisa" not in shown
    assert "Päällekkäin" not in shown
    own = text(content(client.get(url("bookings:done", reference=booking.reference))))
    assert "by Kela: Päällekkäin" in own
    assert "Kaisa" not in own


# --- The draft in the session --------------------------------------------------------------------------------------


def stored_session(client) -> str:
    """The session as its row in the database holds it, decoded (the signature and compression are no secret)."""
    row = Session.objects.get(session_key=client.session.session_key)
    return json.dumps(SessionStore().decode(row.session_data), ensure_ascii=False)


def test_booking_draft__contact_step__typed_details_not_in_the_session_row_in_clear_and_the_booking_confirms(
    client, partner, sanni, line
) -> None:
    open_customer(client, SANNI)
    slot = slot_at(line)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": slot.pk})
    assert client.post(url("bookings:contact"), TYPED)["Location"] == url("bookings:check")

    stored = stored_session(client)
    assert typed_on(stored) == []
    check = content(client.get(url("bookings:check")))
    assert typed_on(check) == ["040 7654321", TYPED["email"], TYPED["description"]]  # the draft reads back
    assert typed_on(stored_session(client)) == []

    response = client.post(url("bookings:check"), confirm_form(client.get(url("bookings:check"))))
    booking = Booking.objects.get(status=Booking.Status.CONFIRMED)
    assert response["Location"] == url("bookings:done", reference=booking.reference)
    assert (booking.contact_phone, booking.contact_email, booking.description) == (
        "+358407654321",
        TYPED["email"],
        TYPED["description"],
    )


def test_booking_draft__written_under_a_retired_key__no_draft_and_the_booking_starts_again(
    client, partner, customer, line
) -> None:
    open_customer(client)
    session = client.session
    with override_settings(IDENTITY_CODE_ENCRYPTION_KEYS=[crypto.new_encryption_key()]):  # a key since retired
        context.booking_draft_save(partner_request(session, partner), service_line_id=line.pk)
    session.save()

    response = client.get(url("bookings:time"))

    assert response["Location"] == url("bookings:matter")
    assert content(client.get(url("bookings:matter")))
