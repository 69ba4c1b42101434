"""Holding, confirming and cancelling telephone appointments.

Capacity is never oversold: every write that takes capacity locks the slot row (`select_for_update`; on SQLite
the IMMEDIATE transaction serialises writers) and counts confirmed bookings plus holds that have not expired.
Holds stop counting the moment they expire; nothing has to clean them up for the count to be right.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _

from bookings.messages import booking_messages_enqueue
from bookings.models import Booking, Customer, Slot
from bookings.services import statements
from kelabooking import clock
from kelabooking.models import Message
from partners.models import User
from registry.models import Organisation

# Unambiguous characters only: no 0/O, no 1/I.
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class BookingError(Exception):
    """A booking rule refused the change; `message` is translated and safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SlotFullError(BookingError):
    """The time was taken meanwhile. `alternatives` are the nearest free times of the same line and language."""

    def __init__(self, alternatives: list[Slot]) -> None:
        super().__init__(_("This time was just taken. Choose another time."))
        self.alternatives = alternatives


class ExistingBookingError(BookingError):
    def __init__(self, message: str, existing: Booking) -> None:
        super().__init__(message)
        self.existing = existing


def new_reference() -> str:
    """`K7F-29QX`: 7 random characters from a 32-letter alphabet (about 34 bits), easy to read aloud."""
    characters = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(7))
    return f"{characters[:3]}-{characters[3:]}"


def bookable_window(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Times after the minimum notice and within the booking horizon can be booked."""
    return (
        now + dt.timedelta(minutes=settings.BOOKING_MIN_NOTICE_MINUTES),
        now + dt.timedelta(weeks=settings.BOOKING_HORIZON_WEEKS),
    )


def nearest_free_slots(*, slot: Slot, now: dt.datetime, count: int = 3) -> list[Slot]:
    from bookings.selectors import free_slots

    earliest, latest = bookable_window(now)
    candidates = free_slots(
        service_line=slot.service_line, language=slot.language, start=max(earliest, slot.starts_at), end=latest, now=now
    )
    return [candidate for candidate in candidates if candidate.pk != slot.pk][:count]


def _taken(slot: Slot, *, now: dt.datetime, excluding: Booking | None = None) -> int:
    queryset = Booking.objects.filter(slot=slot).taking_capacity(now=now)
    if excluding is not None:
        queryset = queryset.exclude(pk=excluding.pk)
    return queryset.count()


@transaction.atomic
def customer_find_or_create(*, identity_code: str) -> Customer:
    """The register's customer, or a new one the partner will give name and contact details for."""
    customer, _created = Customer.objects.get_or_create(
        identity_code=identity_code, defaults={"source": Customer.Source.ENTERED_BY_PARTNER}
    )
    return customer


@transaction.atomic
def booking_hold(
    *, slot_id: int, customer: Customer, partner: User, organisation: Organisation, now: dt.datetime | None = None
) -> Booking:
    """Hold a time for BOOKING_HOLD_MINUTES. A partner holds one time at most: a new pick releases the old."""
    now = now or clock.now()
    slot = Slot.objects.select_for_update(of=("self",)).select_related("service_line").filter(pk=slot_id).first()
    # Released after the slot is locked: booking_confirm locks slot, then booking, and the opposite order deadlocks.
    Booking.objects.filter(booked_by=partner, status=Booking.Status.HELD).delete()
    earliest, latest = bookable_window(now)
    if slot is None or not slot.service_line.is_active or not earliest <= slot.starts_at <= latest:
        raise BookingError(_("This time cannot be booked. Choose another time."))
    if _taken(slot, now=now) >= slot.capacity:
        raise SlotFullError(nearest_free_slots(slot=slot, now=now))
    for _attempt in range(5):
        try:
            with transaction.atomic():
                return Booking.objects.create(
                    reference=new_reference(),
                    slot=slot,
                    customer=customer,
                    status=Booking.Status.HELD,
                    hold_expires_at=now + dt.timedelta(minutes=settings.BOOKING_HOLD_MINUTES),
                    channel=Booking.Channel.PARTNER,
                    organisation=organisation,
                    booked_by=partner,
                )
        except IntegrityError:  # a reference collision: draw again
            continue
    raise BookingError(_("The booking could not be saved. Please try again."))


@dataclass(frozen=True)
class ContactDetails:
    phone: str
    email: str = ""
    description: str = ""
    interpreter_language: str = ""
    first_name: str = ""
    last_name: str = ""


def booking_confirm(
    *,
    booking_id: int,
    partner: User,
    contact: ContactDetails,
    idempotency_key: uuid.UUID,
    now: dt.datetime | None = None,
    record: Callable[[Booking], object] | None = None,
) -> Booking:
    """Turn the partner's hold into a booking (compare-and-swap from `held`).

    - The same idempotency key again returns the booking it made (a double submit is harmless).
    - An expired hold is taken again if the slot still has room; otherwise it is released and `SlotFullError`
      carries nearby times.
    - A customer has at most one active future booking per service line and never two overlapping ones.
    - The confirmation message is written to the outbox in this transaction.
    - `record(booking)` runs in this transaction too (the view writes its audit event there): both commit, or
      neither does.
    """
    outcome = _booking_confirm_and_record(
        booking_id=booking_id,
        partner=partner,
        contact=contact,
        idempotency_key=idempotency_key,
        now=now,
        record=record,
    )
    if isinstance(outcome, SlotFullError):
        # Raised after the commit: an exception inside the transaction would undo the release of the expired hold.
        raise outcome
    return outcome


@transaction.atomic
def _booking_confirm_and_record(*, record: Callable[[Booking], object] | None, **arguments) -> Booking | SlotFullError:
    outcome = _booking_confirm(**arguments)
    if record is not None and isinstance(outcome, Booking):
        record(outcome)
    return outcome


def _booking_confirm(
    *,
    booking_id: int,
    partner: User,
    contact: ContactDetails,
    idempotency_key: uuid.UUID,
    now: dt.datetime | None,
) -> Booking | SlotFullError:
    now = now or clock.now()
    # One statement finds the booking this key already made (a double submit) and the partner's hold, and locks
    # their customer and slot (then the compare-and-swap locks the booking). NO KEY UPDATE serialises the confirms
    # of one customer, and every write that takes the slot's capacity (FOR UPDATE in booking_hold), without
    # blocking a hold's insert that only refers to the customer or the slot. The bookings' own columns may be older
    # than the locks: the compare-and-swap below decides.
    found = statements.lock_hold(idempotency_key=idempotency_key, booking_id=booking_id, partner_id=partner.pk)
    earlier = next((booking for booking in found if booking.idempotency_key == idempotency_key), None)
    if earlier is not None:
        if earlier.booked_by_id != partner.pk:  # a key from another partner's form: tampered, never theirs to see
            raise BookingError(_("The booking could not be saved. Please try again."))
        return earlier
    hold = next((booking for booking in found if booking.pk == booking_id), None)
    if hold is None:
        raise BookingError(_("The time you chose is no longer held for you. Choose a time again."))
    if hold.status != Booking.Status.HELD:  # a booking never goes back to held: no lock needed to refuse
        raise BookingError(_("The time you chose is no longer held for you. Choose a time again."))
    customer, slot = hold.customer, hold.slot
    if slot.starts_at < bookable_window(now)[0]:
        raise SlotFullError(nearest_free_slots(slot=slot, now=now))
    if hold.hold_expires_at <= now and _taken(slot, now=now, excluding=hold) >= slot.capacity:
        if not Booking.objects.filter(pk=hold.pk, status=Booking.Status.HELD).delete()[0]:
            return _settled_meanwhile(hold, idempotency_key)
        return SlotFullError(nearest_free_slots(slot=slot, now=now))

    # Compare-and-swap from held, if the customer's rules allow it (their bookings cannot change meanwhile: the
    # customer is locked). No row: a request that had the locks first confirmed or released the hold, or a rule
    # refuses; the slow path below tells which.
    confirmed = {
        "status": Booking.Status.CONFIRMED,
        "hold_expires_at": None,
        "confirmed_at": now,
        "contact_phone": contact.phone,
        "contact_email": contact.email,
        "description": contact.description,
        "interpreter_needed": bool(contact.interpreter_language),
        "interpreter_language": contact.interpreter_language,
        "idempotency_key": idempotency_key,
    }
    if not statements.confirm_hold(hold=hold, values=confirmed, now=now):
        _check_customer_rules(customer=customer, slot=slot, now=now, excluding=hold)
        return _settled_meanwhile(hold, idempotency_key)
    for field, value in confirmed.items():
        setattr(hold, field, value)
    if not customer.in_register and (contact.first_name or contact.last_name):
        customer.first_name, customer.last_name = contact.first_name, contact.last_name
        customer.save(update_fields=["first_name", "last_name", "updated_at"])
    _enqueue_booking_message(hold, kind=Message.Kind.CONFIRMATION)
    return hold


def _settled_meanwhile(hold: Booking, idempotency_key: uuid.UUID) -> Booking:
    """The hold stopped being held while this request waited for the locks: the same submit confirmed it first
    (return that booking), or it was released or booked otherwise (refuse)."""
    now_stored = Booking.objects.filter(pk=hold.pk).first()
    if now_stored is not None and now_stored.idempotency_key == idempotency_key:
        return now_stored
    raise BookingError(_("The time you chose is no longer held for you. Choose a time again."))


def _conflicting_bookings(*, customer: Customer, slot: Slot, now: dt.datetime, excluding: Booking) -> QuerySet:
    """The customer's other future bookings on the slot's service line or overlapping it."""
    return (
        Booking.objects.filter(customer=customer)
        .upcoming(now=now)
        .exclude(pk=excluding.pk)
        .filter(
            Q(slot__service_line=slot.service_line_id)
            | Q(slot__starts_at__lt=slot.ends_at, slot__ends_at__gt=slot.starts_at)
        )
    )


def _check_customer_rules(*, customer: Customer, slot: Slot, now: dt.datetime, excluding: Booking) -> None:
    """At most one active future booking per service line, and never two overlapping ones: raise the rule's error.

    Only the refused compare-and-swap calls this, to tell the partner which rule refused; the swap itself checks
    both rules in its UPDATE. One read through the customer's index (never `.first()`: its ORDER BY … LIMIT 1 can
    walk the whole table when the customer has no such booking).
    """
    conflicts = list(
        _conflicting_bookings(customer=customer, slot=slot, now=now, excluding=excluding)
        .select_related("slot__service_line")
        .order_by("slot__starts_at")
    )
    same_line = next((booking for booking in conflicts if booking.slot.service_line_id == slot.service_line_id), None)
    if same_line is not None:
        raise ExistingBookingError(
            _("The customer already has a booked time for this matter. Cancel it first if a new time is needed."),
            same_line,
        )
    if conflicts:
        raise ExistingBookingError(
            _("The customer already has another booking at this time. Choose another time."), conflicts[0]
        )


@transaction.atomic
def booking_cancel(
    *,
    booking_id: int,
    actor: User,
    reason: str = "",
    now: dt.datetime | None = None,
    record: Callable[[Booking], object] | None = None,
) -> Booking:
    """Cancel a future booking; its capacity is free again in the same transaction; who, when and why are kept.
    `record(booking)` runs in this transaction too (the view writes its audit event there)."""
    now = now or clock.now()
    booking = Booking.objects.select_for_update(of=("self",)).select_related("slot__service_line").get(pk=booking_id)
    if booking.status != Booking.Status.CONFIRMED or booking.slot.starts_at <= now:
        raise BookingError(_("Only a booked time in the future can be cancelled."))
    booking.status = Booking.Status.CANCELLED
    booking.cancelled_at = now
    booking.cancelled_by = actor
    booking.cancellation_reason = reason.strip()[:200]
    booking.save(update_fields=["status", "cancelled_at", "cancelled_by", "cancellation_reason"])
    _enqueue_booking_message(booking, kind=Message.Kind.CANCELLATION)
    if record is not None:
        record(booking)
    return booking


def _enqueue_booking_message(booking: Booking, *, kind: str) -> None:
    """The customer's SMS, and e-mail when an address was given for this booking, in the caller's transaction."""
    booking_messages_enqueue(booking=booking, kind=kind)
