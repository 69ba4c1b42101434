"""Whether a time can be booked at all, decided once for the hold, the confirm and the move: its line takes
bookings, and it lies after the minimum notice and within the horizon (`bookable_window`) at the moment of the
change; a move goes only to another time of the same line and language."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

import pytest
import time_machine
from django.conf import settings

from bookings.models import Booking, ServiceLine, Slot
from bookings.services import BookingError, booking_confirm, booking_hold, booking_move
from bookings.services.booking import ContactDetails
from kelabooking import clock
from tests.factories import BookingFactory, CustomerFactory, SlotFactory, acting_for, acting_for_hold

pytestmark = pytest.mark.django_db

CANNOT_BE_BOOKED = "This time cannot be booked. Choose another time."
NOTICE = dt.timedelta(minutes=settings.BOOKING_MIN_NOTICE_MINUTES)


def _line_closed(slot: Slot, _settings) -> None:
    ServiceLine.objects.filter(pk=slot.service_line_id).update(is_active=False)


def _horizon_shortened(_slot: Slot, settings) -> None:
    settings.BOOKING_HORIZON_WEEKS = 1


# How a time that could be held stops being bookable: (when it starts, what changes after it was held, how much
# later the change is made). The hold lasts BOOKING_HOLD_MINUTES, so six minutes later it has not run out.
REASONS = {
    "line closed": (dt.timedelta(days=2), _line_closed, dt.timedelta(0)),
    "within the minimum notice": (NOTICE + dt.timedelta(minutes=5), None, dt.timedelta(minutes=6)),
    "beyond the horizon": (dt.timedelta(weeks=2), _horizon_shortened, dt.timedelta(0)),
}


def _hold(slot: Slot) -> Booking:
    return booking_hold(acting=acting_for(customer=CustomerFactory()), slot_id=slot.pk)


def _confirm(held: Booking) -> Booking:
    return booking_confirm(
        acting=acting_for_hold(held),
        hold_id=held.pk,
        contact=ContactDetails(phone="+358401234567"),
        idempotency_key=uuid.uuid4(),
    )


def _booked_beside(slot: Slot) -> Booking:
    """A booking of the same line and language tomorrow, to be moved to `slot`."""
    tomorrow = SlotFactory(
        service_line=slot.service_line, language=slot.language, starts_at=clock.now() + dt.timedelta(days=1)
    )
    return BookingFactory.confirmed(slot=tomorrow)


def _prepare(service: str, slot: Slot) -> Callable[[], Booking]:
    """What the service is called with, set up while the time can still be booked."""
    if service == "hold":
        return lambda: _hold(slot)
    if service == "confirm":
        held = _hold(slot)
        return lambda: _confirm(held)
    booked = _booked_beside(slot)
    return lambda: booking_move(acting=acting_for_hold(booked), booking_id=booked.pk, slot_id=slot.pk)


def _state() -> dict[int, tuple]:
    return {booking.pk: (booking.status, booking.slot_id) for booking in Booking.objects.all()}


@pytest.mark.parametrize("reason", REASONS)
@pytest.mark.parametrize("service", ["hold", "confirm", "move"])
def test_booking__time_no_longer_bookable__refused_alike_by_hold_confirm_and_move(settings, service, reason) -> None:
    starts_in, change, after = REASONS[reason]
    now = clock.now()
    with time_machine.travel(now, tick=False):
        slot = SlotFactory(starts_at=now + starts_in)
        call = _prepare(service, slot)
        if change is not None:
            change(slot, settings)
    before = _state()

    with time_machine.travel(now + after, tick=False), pytest.raises(BookingError) as refused:
        call()

    assert type(refused.value) is BookingError
    assert str(refused.value.message) == CANNOT_BE_BOOKED
    assert _state() == before


@pytest.mark.parametrize("target", ["the same time", "another line", "another language"])
def test_booking__move_to_a_time_of_another_matter__refused_as_not_bookable(target) -> None:
    booked = BookingFactory.confirmed()
    slot = booked.slot
    slot_id = {
        "the same time": lambda: slot.pk,
        "another line": lambda: SlotFactory(starts_at=slot.ends_at).pk,
        "another language": lambda: (
            SlotFactory(service_line=slot.service_line, language="sv", starts_at=slot.ends_at).pk
        ),
    }[target]()

    with pytest.raises(BookingError) as refused:
        booking_move(acting=acting_for_hold(booked), booking_id=booked.pk, slot_id=slot_id)

    assert type(refused.value) is BookingError
    assert str(refused.value.message) == CANNOT_BE_BOOKED
    assert Booking.objects.get(pk=booked.pk).slot_id == slot.pk
