"""The one point where a booking change is announced (`booking_changed`): each service ends in it, every registered
consumer hears of each change in the change's transaction, and the customer's messages are one such consumer."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import time_machine
from django.contrib.auth.models import Permission

from bookings.messages import booking_change_messages
from bookings.models import Booking, Slot
from bookings.services import booking_cancel, booking_confirm, booking_hold, booking_move, booking_remind, changes
from bookings.services.booking import ContactDetails
from bookings.services.changes import BookingChange, booking_change_consumers, on_booking_changed
from kelabooking import clock
from kelabooking.models import Message
from partners.models import AuditEvent
from tests.factories import (
    BookingFactory,
    CustomerFactory,
    OrganisationFactory,
    PartnerFactory,
    SlotFactory,
    UserFactory,
    acting_for,
    acting_for_hold,
    acting_staff,
)

pytestmark = pytest.mark.django_db


def later(slot: Slot) -> Slot:
    """Another time of the same line and language, right after `slot`."""
    return SlotFactory(service_line=slot.service_line, language=slot.language, starts_at=slot.ends_at)


def staff_who_may_change_bookings():
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="change_booking"))
    return staff


def hold() -> Booking:
    customer = CustomerFactory()
    acting = acting_for(PartnerFactory(), organisation=OrganisationFactory(), customer=customer)
    return booking_hold(acting=acting, slot_id=SlotFactory().pk)


def confirm(held: Booking) -> Booking:
    return booking_confirm(
        acting=acting_for_hold(held),
        hold_id=held.pk,
        contact=ContactDetails(phone="+358401234567", email="aino@example.org"),
        idempotency_key=uuid.uuid4(),
    )


def remind(booked: Booking) -> Booking:
    assert booking_remind(booking_id=booked.pk)
    return booked


# Each booking service, run on a booking made for it: (what it is called with, the change it announces).
def _changes() -> dict[str, tuple[Callable[[], Booking], BookingChange]]:
    held = BookingFactory.held()
    booked = BookingFactory.confirmed(contact_email="aino@example.org")
    return {
        "hold": (hold, BookingChange.HELD),
        "confirm": (lambda: confirm(held), BookingChange.CONFIRMED),
        "move": (
            lambda: booking_move(acting=acting_for_hold(booked), booking_id=booked.pk, slot_id=later(booked.slot).pk),
            BookingChange.MOVED,
        ),
        "cancel": (
            lambda: booking_cancel(acting=acting_for_hold(booked), booking_id=booked.pk),
            BookingChange.CANCELLED,
        ),
        "staff cancel": (
            lambda: booking_cancel(acting=acting_staff(staff_who_may_change_bookings()), booking_id=booked.pk),
            BookingChange.CANCELLED,
        ),
        "remind": (lambda: remind(booked), BookingChange.REMINDED),
    }


def bookings() -> dict[int, tuple]:
    return {booking.pk: (booking.status, booking.slot_id, booking.reminded_at) for booking in Booking.objects.all()}


CHANGES = ["hold", "confirm", "move", "cancel", "staff cancel", "remind"]


@pytest.fixture
def heard(monkeypatch) -> list[tuple[int, BookingChange, tuple]]:
    """A consumer registered beside the messages for the test: what it heard, with the booking as the database
    has it at that moment (in the change's transaction)."""
    heard: list[tuple[int, BookingChange, tuple]] = []

    def listen(*, booking: Booking, change: BookingChange) -> None:
        stored = Booking.objects.get(pk=booking.pk)
        heard.append((booking.pk, change, (stored.status, stored.slot_id)))

    monkeypatch.setattr(changes, "booking_change_consumers", [*booking_change_consumers, listen])
    return heard


@pytest.mark.parametrize("name", CHANGES)
def test_booking_change__each_service__announced_once_after_its_write(heard, name) -> None:
    with time_machine.travel(clock.now(), tick=False):
        call, change = _changes()[name]
        booking = call()

    booking.refresh_from_db()
    assert heard == [(booking.pk, change, (booking.status, booking.slot_id))]


@pytest.mark.parametrize("name", CHANGES)
def test_booking_change__consumer_raises__the_change_is_undone(monkeypatch, django_capture_on_commit_callbacks, name):
    def refuse(*, booking: Booking, change: BookingChange) -> None:
        raise RuntimeError("the consumer failed")

    with time_machine.travel(clock.now(), tick=False):
        call, _change = _changes()[name]
        before = {
            booking.pk: (booking.status, booking.slot_id, booking.reminded_at) for booking in Booking.objects.all()
        }
        events = AuditEvent.objects.count()
        monkeypatch.setattr(changes, "booking_change_consumers", [*booking_change_consumers, refuse])

        with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError):
            call()

    assert bookings() == before
    assert AuditEvent.objects.count() == events
    assert not Message.objects.exists()
    assert callbacks == []


@pytest.mark.parametrize("name", CHANGES)
def test_booking_change__messages_not_registered__no_service_queues_a_message(monkeypatch, name) -> None:
    """The customer's messages come only through the announcement: without their consumer, none is queued."""
    monkeypatch.setattr(changes, "booking_change_consumers", [])

    with time_machine.travel(clock.now(), tick=False):
        call, _change = _changes()[name]
        call()

    assert not Message.objects.exists()


def test_booking_change__messages_consumer__registered_once_by_the_app() -> None:
    assert booking_change_consumers.count(booking_change_messages) == 1
    on_booking_changed(booking_change_messages)
    assert booking_change_consumers.count(booking_change_messages) == 1


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        (BookingChange.HELD, None),
        (BookingChange.CONFIRMED, Booking.MessageKind.CONFIRMATION),
        (BookingChange.MOVED, Booking.MessageKind.CHANGE),
        (BookingChange.CANCELLED, Booking.MessageKind.CANCELLATION),
        (BookingChange.REMINDED, Booking.MessageKind.REMINDER),
    ],
)
def test_booking_change_messages__each_change__the_customers_message_or_none(change, kind) -> None:
    booking = BookingFactory.confirmed(contact_email="aino@example.org")

    booking_change_messages(booking=booking, change=change)

    expected = {(kind, "sms"), (kind, "email")} if kind else set()
    assert set(Message.objects.values_list("kind", "channel")) == expected
