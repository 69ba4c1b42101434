"""The two statements of a booking confirm, written in SQL once instead of built by the ORM on every request.

A confirm is the hottest write of the service, and building these two statements with the ORM (a join of four tables
with row locks, and an UPDATE with a correlated NOT EXISTS) cost more CPU than running them: about 1.4 ms a confirm
against 0.1 ms for the same SQL written out (docs/benchmarks.md §3). Everything else keeps using the ORM.

The column lists come from the models (`kelabooking.sql`), so a new field needs no change here. The customer's rules
in `confirm_hold` are the same as `booking._conflicting_bookings` (the ORM form, which explains a refusal); a test
runs both over the same bookings so that they cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Any

from django.db import connection

from bookings.models import Booking, Customer, ServiceLine, Slot
from kelabooking import sql

# The models the locking read returns a row of, in its column order, with their table aliases.
_LOCKED = ((Booking, "b"), (Customer, "c"), (Slot, "s"), (ServiceLine, "l"))


@functools.cache
def _lock_hold_sql(vendor: str) -> str:
    columns = ", ".join(sql.columns(model, alias) for model, alias in _LOCKED)
    # NO KEY UPDATE of the customer and the slot: see booking._booking_confirm. SQLite has no row locks: its
    # IMMEDIATE transaction serialises every writer instead.
    lock = "FOR NO KEY UPDATE OF c, s" if connection.features.has_select_for_no_key_update else ""
    return f"""
        SELECT {columns}
        FROM bookings_booking b
        JOIN bookings_customer c ON c.id = b.customer_id
        JOIN bookings_slot s ON s.id = b.slot_id
        JOIN bookings_serviceline l ON l.id = s.service_line_id
        WHERE b.idempotency_key = %s OR (b.id = %s AND b.booked_by_id = %s)
        {lock}
    """  # noqa: S608 - the columns are the models' own, never input


def lock_hold(*, idempotency_key: uuid.UUID, booking_id: int, partner_id: int) -> list[Booking]:
    """The booking this key already made and the partner's hold `booking_id`, with their customer, slot and service
    line; locks the customer and the slot (PostgreSQL). Must run in a transaction."""
    params = [sql.prepare(Booking, "idempotency_key", idempotency_key), booking_id, partner_id]
    with connection.cursor() as cursor:
        cursor.execute(_lock_hold_sql(connection.vendor), params)
        rows = cursor.fetchall()
    bookings = []
    for row in rows:
        parts, start = [], 0
        for model, _alias in _LOCKED:
            end = start + len(model._meta.concrete_fields)
            parts.append(sql.instance(model, row[start:end]))
            start = end
        booking, customer, slot, service_line = parts
        slot.service_line = service_line
        booking.customer, booking.slot = customer, slot
        bookings.append(booking)
    return bookings


# The columns a confirm sets, in the order of the values `confirm_hold` takes.
CONFIRMED_FIELDS = (
    "status",
    "hold_expires_at",
    "confirmed_at",
    "contact_phone",
    "contact_email",
    "description",
    "interpreter_needed",
    "interpreter_language",
    "idempotency_key",
)


@functools.cache
def _confirm_hold_sql(vendor: str) -> str:
    assignments = ", ".join(f"{sql.column(Booking, name)} = %s" for name in CONFIRMED_FIELDS)
    # The hold, if still held, unless the customer has another upcoming confirmed booking on the slot's service line
    # or overlapping the slot (booking._conflicting_bookings).
    return f"""
        UPDATE bookings_booking SET {assignments}
        WHERE id = %s AND status = %s AND NOT EXISTS (
            SELECT 1 FROM bookings_booking other JOIN bookings_slot other_slot ON other_slot.id = other.slot_id
            WHERE other.customer_id = %s AND other.id <> %s AND other.status = %s AND other_slot.starts_at > %s
            AND (other_slot.service_line_id = %s OR (other_slot.starts_at < %s AND other_slot.ends_at > %s))
        )
    """  # noqa: S608 - the columns are the models' own, never input


def confirm_hold(*, hold: Booking, values: dict[str, Any], now: dt.datetime) -> bool:
    """Compare-and-swap: set `values` (the CONFIRMED_FIELDS) on the hold if it is still held and the customer has no
    other upcoming confirmed booking on the slot's service line or overlapping the slot. Returns whether it did."""
    slot = hold.slot
    params = [sql.prepare(Booking, name, values[name]) for name in CONFIRMED_FIELDS]
    params += [hold.pk, Booking.Status.HELD]
    params += [hold.customer_id, hold.pk, Booking.Status.CONFIRMED, sql.prepare(Slot, "starts_at", now)]
    params += [
        slot.service_line_id,
        sql.prepare(Slot, "starts_at", slot.ends_at),
        sql.prepare(Slot, "ends_at", slot.starts_at),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_confirm_hold_sql(connection.vendor), params)
        return cursor.rowcount == 1
