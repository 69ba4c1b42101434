"""Writes of the bookings app. Each rule of DESIGN.md §4 lives in exactly one of these functions."""

from __future__ import annotations

from bookings.services.booking import (
    BookingError,
    ExistingBookingError,
    SlotFullError,
    booking_cancel,
    booking_confirm,
    booking_hold,
    customer_find_or_create,
)
from bookings.services.reminders import booking_remind, bookings_remind
from bookings.services.slots import slots_generate

__all__ = [
    "BookingError",
    "ExistingBookingError",
    "SlotFullError",
    "booking_cancel",
    "booking_confirm",
    "booking_hold",
    "booking_remind",
    "bookings_remind",
    "customer_find_or_create",
    "slots_generate",
]
