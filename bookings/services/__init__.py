"""Writes of the bookings app. Each rule of DESIGN.md §4 lives in exactly one of these functions."""

from __future__ import annotations

from bookings.services.booking import (
    BookingDetails,
    BookingError,
    ContactDetails,
    CustomerOverview,
    ExistingBookingError,
    HoldChangedError,
    MatterBookedError,
    SlotFullError,
    TimeBookedError,
    booking_cancel,
    booking_confirm,
    booking_details,
    booking_hold,
    booking_move,
    customer_find_or_create,
    customer_overview,
    register_contact_show,
)
from bookings.services.reminders import booking_remind, bookings_remind
from bookings.services.slots import slot_capacity_check, slots_generate

__all__ = [
    "BookingDetails",
    "BookingError",
    "ContactDetails",
    "CustomerOverview",
    "ExistingBookingError",
    "HoldChangedError",
    "MatterBookedError",
    "SlotFullError",
    "TimeBookedError",
    "booking_cancel",
    "booking_confirm",
    "booking_details",
    "booking_hold",
    "booking_move",
    "booking_remind",
    "bookings_remind",
    "customer_find_or_create",
    "customer_overview",
    "register_contact_show",
    "slot_capacity_check",
    "slots_generate",
]
