"""The one point where a booking change is announced.

Every service that changes a booking (hold, confirm, move, cancel, remind) ends in one `booking_changed` call, in
its own transaction. The announcement goes to each consumer an app registered with `on_booking_changed` (in its
`AppConfig.ready()`): the customer's messages (`bookings.messages.booking_change_messages`) and whatever comes next,
Kela's contact-centre system or statistics. A consumer runs in the change's transaction: what it writes is committed
with the change or not at all, and a consumer that raises undoes the change. Adding one touches no booking service.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bookings.models import Booking


class BookingChange(enum.StrEnum):
    HELD = "held"
    CONFIRMED = "confirmed"
    MOVED = "moved"
    CANCELLED = "cancelled"
    REMINDED = "reminded"


# Called with the booking as it now is (its slot, the new one after a move, and its customer read) and the change.
BookingChangeConsumer = Callable[..., None]

booking_change_consumers: list[BookingChangeConsumer] = []


def on_booking_changed(consumer: BookingChangeConsumer) -> BookingChangeConsumer:
    """Register `consumer(*, booking, change)` for every booking change; registering it again changes nothing."""
    if consumer not in booking_change_consumers:
        booking_change_consumers.append(consumer)
    return consumer


def booking_changed(*, booking: Booking, change: BookingChange) -> None:
    """Announce `change` of `booking` to every registered consumer, in the caller's transaction."""
    for consumer in booking_change_consumers:
        consumer(booking=booking, change=change)
