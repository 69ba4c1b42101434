"""Reads of the bookings app, each in a fixed number of queries whatever the amount of history."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from bookings.models import Booking, Customer, ServiceLine, Slot


def free_slots(
    *, service_line: ServiceLine, language: str, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> list[Slot]:
    """Slots between `start` and `end` with room left, in one query (`taken` annotated on each).

    The bookings are counted per slot in a correlated subquery, so each slot in the window is one lookup in the
    (slot, status) index: the cost follows the slots shown, not the size of the booking history. (A join with
    GROUP BY made PostgreSQL scan every booking once the history grew.)
    """
    taken = (
        Booking.objects.filter(slot=OuterRef("pk"))
        .filter(Q(status=Booking.Status.CONFIRMED) | Q(status=Booking.Status.HELD, hold_expires_at__gt=now))
        .order_by()
        .values("slot")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return list(
        Slot.objects.filter(service_line=service_line, language=language, starts_at__gte=start, starts_at__lt=end)
        .annotate(taken=Coalesce(Subquery(taken, output_field=IntegerField()), 0))
        .filter(taken__lt=F("capacity"))
        .order_by("starts_at")
    )


@dataclass(frozen=True)
class RegisterContact:
    phone: str
    email: str


def register_contact(*, customer: Customer) -> RegisterContact | None:
    """The register's contact details that a partner may see and have pre-filled (DESIGN.md §4 rule 7).

    None for a customer with non-disclosure, for one not in the register, and when the register has neither a phone
    nor an e-mail: the only place this rule is decided.
    """
    if customer.non_disclosure or not customer.in_register or not (customer.phone or customer.email):
        return None
    return RegisterContact(phone=customer.phone, email=customer.email)


def customer_bookings(*, customer: Customer) -> QuerySet[Booking]:
    """The customer's bookings, newest first, with what the overview shows (line, organisation) joined in."""
    return (
        Booking.objects.filter(customer=customer)
        .exclude(status=Booking.Status.HELD)
        .select_related("slot__service_line", "organisation")
        .order_by("-slot__starts_at")
    )


def partner_hold(*, partner, customer: Customer) -> Booking | None:
    # A partner holds one time at most, so no ORDER BY: `.first()` would add one (by the bookings' default order or
    # by id), and PostgreSQL may then walk that order through the whole history instead of the customer's index.
    holds = (
        Booking.objects.filter(booked_by=partner, customer=customer, status=Booking.Status.HELD)
        .select_related("slot__service_line")
        .order_by()[:1]
    )
    return next(iter(holds), None)
