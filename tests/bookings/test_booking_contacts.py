"""The contact details typed for a booking (phone, e-mail, description of the matter): the booking draft that holds
the typing between the steps is never in the session row in clear."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session

from bookings.models import Booking, Customer
from partners import context
from tests.bookings.test_caseworker_flow import content
from tests.bookings.test_journey import confirm_form, open_customer, slot_at, url
from tests.bookings.test_journey import customer as customer  # noqa: F401 - fixtures
from tests.bookings.test_journey import line as line  # noqa: F401
from tests.bookings.test_journey import organisation as organisation  # noqa: F401
from tests.bookings.test_journey import partner as partner  # noqa: F401

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
    retired = Fernet(Fernet.generate_key())
    session[context.DRAFT_KEY] = retired.encrypt(json.dumps({"service_line_id": line.pk}).encode()).decode()
    session.save()

    response = client.get(url("bookings:time"))

    assert response["Location"] == url("bookings:matter")
    assert content(client.get(url("bookings:matter")))
