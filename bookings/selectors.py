"""Reads of the bookings app, each in a fixed number of queries whatever the amount of history."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from django.db.models import F, QuerySet
from django.http import Http404

from bookings.models import Booking, Customer, ServiceLine, Slot
from kelabooking import clock
from partners.context import ActingContext
from partners.services import acting_organisation


def free_slots(
    *,
    service_line: ServiceLine,
    language: str,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    limit: int | None = None,
) -> list[Slot]:
    """Slots between `start` and `end` with room left, in one query (`taken` annotated on each).

    The bookings are counted per slot in a correlated subquery, so each slot in the window is one lookup in the
    (slot, status) index: the cost follows the slots shown, not the size of the booking history. (A join with
    GROUP BY made PostgreSQL scan every booking once the history grew.)
    """
    slots = (
        Slot.objects.filter(service_line=service_line, language=language, starts_at__gte=start, starts_at__lt=end)
        .with_taken(now=now)
        .filter(taken__lt=F("capacity"))
        .order_by("starts_at")
    )
    return list(slots[:limit] if limit is not None else slots)


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


@dataclass(frozen=True)
class BookingContact:
    """What the partner typed for one booking: the phone Kela calls, the e-mail and the description of the matter."""

    phone: str
    email: str
    description: str


def booking_contact(*, acting: ActingContext, booking: Booking, just_confirmed: bool = False) -> BookingContact | None:
    """The contact details typed for `booking` that the acting partner may see (DESIGN.md §4 rule 7).

    Only the organisation that made the booking sees them; a booking made by another organisation, by the customer
    online or by Kela's phone service shows none. For a customer with non-disclosure even that organisation sees them
    only on the confirmation that follows the typing (`just_confirmed`, for the partner who confirmed it). None also
    when the retention job has erased them: the only place this rule is decided.
    """
    organisation = booking.organisation if booking.channel == Booking.Channel.PARTNER else None
    if organisation is None or organisation.business_id != acting.organisation_business_id:
        return None
    if booking.customer.non_disclosure and not (just_confirmed and booking.booked_by_id == acting.user.pk):
        return None
    if not (booking.contact_phone or booking.contact_email or booking.description):
        return None
    return BookingContact(phone=booking.contact_phone, email=booking.contact_email, description=booking.description)


def upcoming_bookings(*, customer: Customer) -> list[Booking]:
    """The customer's upcoming bookings, soonest first, with their slots."""
    return list(
        Booking.objects.filter(customer=customer)
        .upcoming(now=clock.now())
        .select_related("slot")
        .order_by("slot__starts_at")
    )


def customer_bookings(*, customer: Customer) -> QuerySet[Booking]:
    """The customer's bookings, newest first, with what the overview shows (line, organisation) joined in."""
    return (
        Booking.objects.filter(customer=customer)
        .exclude(status=Booking.Status.HELD)
        .select_related("slot__service_line", "organisation", "cancelled_by")
        .order_by("-slot__starts_at")
    )


def acting_customer(*, acting: ActingContext) -> Customer:
    """The customer this login locked, while the organisation may still book (`acting_organisation`)."""
    acting_organisation(acting=acting)
    return Customer.objects.get(pk=acting.customer_id)


def customer_booking(*, acting: ActingContext, reference: str) -> Booking:
    """A booking of the locked customer by its reference; anything else is a 404, whatever reference is sent."""
    acting_organisation(acting=acting)
    booking = (
        Booking.objects.filter(reference=reference, customer_id=acting.customer_id)
        .exclude(status=Booking.Status.HELD)
        .select_related("slot__service_line", "organisation", "customer", "cancelled_by")
        .first()
    )
    if booking is None:
        raise Http404
    return booking


def partner_hold(*, acting: ActingContext) -> Booking | None:
    """The partner's current hold for the locked customer, while the organisation may still book: a partner holds
    one time at most (a constraint)."""
    acting_organisation(acting=acting)
    return _partner_hold(acting)


def acting_customer_and_hold(*, acting: ActingContext) -> tuple[Customer, Booking | None]:
    """The locked customer and the partner's current hold for them, with one look at the registry (the time step
    shows both)."""
    acting_organisation(acting=acting)
    return Customer.objects.get(pk=acting.customer_id), _partner_hold(acting)


def _partner_hold(acting: ActingContext) -> Booking | None:
    holds = (
        Booking.objects.filter(booked_by=acting.user, customer_id=acting.customer_id, status=Booking.Status.HELD)
        .select_related("slot__service_line", "customer")
        # No ORDER BY: `.first()` would add one, and PostgreSQL may then walk that order through the whole history.
        .order_by()[:1]
    )
    return next(iter(holds), None)


def booking_by_key(*, acting: ActingContext, idempotency_key: str | None) -> Booking | None:
    """The locked customer's booking that this partner confirmed with `idempotency_key`, if any."""
    acting_organisation(acting=acting)
    try:
        key = uuid.UUID(str(idempotency_key))
    except ValueError:
        return None
    return (
        Booking.objects.filter(idempotency_key=key, booked_by=acting.user, customer_id=acting.customer_id)
        .exclude(status=Booking.Status.HELD)
        .first()
    )
