"""Reads of the bookings app, each in a fixed number of queries whatever the amount of history."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, F, Q, QuerySet

from bookings.models import Booking, Customer, ServiceLine, Slot


def free_slots(
    *, service_line: ServiceLine, language: str, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> list[Slot]:
    """Slots between `start` and `end` with room left, in one query (`taken` annotated on each)."""
    taking = Q(bookings__status=Booking.Status.CONFIRMED) | Q(
        bookings__status=Booking.Status.HELD, bookings__hold_expires_at__gt=now
    )
    return list(
        Slot.objects.filter(service_line=service_line, language=language, starts_at__gte=start, starts_at__lt=end)
        .annotate(taken=Count("bookings", filter=taking))
        .filter(taken__lt=F("capacity"))
        .order_by("starts_at")
    )


def customer_bookings(*, customer: Customer) -> QuerySet[Booking]:
    """The customer's bookings, newest first, with what the overview shows (line, organisation) joined in."""
    return (
        Booking.objects.filter(customer=customer)
        .exclude(status=Booking.Status.HELD)
        .select_related("slot__service_line", "organisation")
        .order_by("-slot__starts_at")
    )


def partner_hold(*, partner, customer: Customer) -> Booking | None:
    return (
        Booking.objects.filter(booked_by=partner, customer=customer, status=Booking.Status.HELD)
        .select_related("slot__service_line")
        .first()
    )
