"""Opening a customer, and holding, confirming and cancelling telephone appointments (DESIGN.md §4).

Every function takes the acting context and checks what it needs of it: the organisation may still book (the
registry, at that moment), the customer is the one this login locked, the hold or booking is this partner's to touch.
Each writes its audit event in its own transaction.

Capacity is never oversold: every write that takes capacity locks the slot row first (`_lock_slots`; on SQLite the
IMMEDIATE transaction serialises writers), reads the clock after its locks, and counts what takes capacity with
`BookingQuerySet.taking_capacity` (`_ensure_room`). Holds stop counting the moment they expire; nothing has to clean
them up for the count to be right. Locks are always taken in one order: the partner, the slot, the customer, the
booking. Whether a time can be booked at all is `_ensure_bookable`.

Each change ends in one announcement, `booking_changed` (bookings/services/changes.py), which tells the customer
(the messages) and any other consumer an app registered, in the change's transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _

from bookings.metrics import BOOKING_REFUSALS
from bookings.models import Booking, Customer, Slot
from bookings.selectors import (
    BookingContact,
    RegisterContact,
    acting_customer,
    bookable_window,
    booking_contact,
    conflicting_bookings,
    customer_booking,
    customer_bookings,
    customer_names_after_confirm,
    nearest_free_slots,
    register_contact,
)
from bookings.services.changes import BookingChange, booking_changed
from kelabooking import clock
from partners.context import ActingContext, ActingRefusedError, CustomerLockedError, Step
from partners.models import AuditEvent, User
from partners.services import acting_organisation, audit_event_record
from registry.models import Organisation

# Unambiguous characters only: no 0/O, no 1/I.
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class BookingError(Exception):
    """A booking rule refused the change; `message` is translated and safe to show, `reason` names the rule (the
    refusals metric's label)."""

    reason = "refused"

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason


class SlotFullError(BookingError):
    """The time was taken meanwhile. `alternatives` are the nearest free times of the same line and language."""

    reason = "slot_full"

    def __init__(self, alternatives: list[Slot]) -> None:
        super().__init__(_("This time was just taken. Choose another time."))
        self.alternatives = alternatives


class HoldChangedError(BookingError):
    """The hold a confirm names is not the partner's current one (another tab picked a time, or it was released)."""

    reason = "hold_changed"

    def __init__(self) -> None:
        super().__init__(
            _("The time you checked is no longer the one held for you. Check the booking again before confirming.")
        )


class ExistingBookingError(BookingError):
    """DESIGN.md §4 rule 4 refused the time: `existing` is the customer's upcoming booking it would stand beside."""

    def __init__(self, message: str, existing: Booking) -> None:
        super().__init__(message)
        self.existing = existing


class MatterBookedError(ExistingBookingError):
    """The customer already has an upcoming booking of this matter."""

    reason = "matter_booked"

    def __init__(self, existing: Booking) -> None:
        super().__init__(
            _("The customer already has a booked time for this matter. Cancel it first if a new time is needed."),
            existing,
        )


class TimeBookedError(ExistingBookingError):
    """The time overlaps another of the customer's upcoming bookings."""

    reason = "time_booked"

    def __init__(self, existing: Booking) -> None:
        super().__init__(_("The customer already has another booking at this time. Choose another time."), existing)


Service = TypeVar("Service", bound=Callable[..., Any])


def counts_refusals(action: str) -> Callable[[Service], Service]:
    """Count a service's refusals by reason (the booking_refusals_total metric), and raise them on."""

    def decorator(service: Service) -> Service:
        @functools.wraps(service)
        def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                return service(*args, **kwargs)
            except (BookingError, ActingRefusedError) as error:
                BOOKING_REFUSALS.labels(action, error.reason).inc()
                raise
            except CustomerLockedError:
                BOOKING_REFUSALS.labels(action, "customer_locked").inc()
                raise

        return counted  # type: ignore[return-value]

    return decorator


@dataclass(frozen=True)
class ContactDetails:
    phone: str
    email: str = ""
    description: str = ""
    interpreter_language: str = ""
    first_name: str = ""
    last_name: str = ""


def new_reference() -> str:
    """`K7F-29QX`: 7 random characters from a 32-letter alphabet (about 34 bits), easy to read aloud."""
    characters = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(7))
    return f"{characters[:3]}-{characters[3:]}"


# --- The acting context's customer ----------------------------------------------------------------------------------


# How many earlier and cancelled bookings the overview shows at a time, newest first.
HISTORY_PAGE_SIZE = 20


@dataclass(frozen=True)
class CustomerOverview:
    customer: Customer
    contact: RegisterContact | None
    upcoming: list[Booking]
    history: list[Booking]  # one page of them
    history_page: int
    has_older: bool

    @property
    def history_first(self) -> int:
        """The position of the page's first booking in the whole history, from 1."""
        return (self.history_page - 1) * HISTORY_PAGE_SIZE + 1

    @property
    def history_last(self) -> int:
        return self.history_first + len(self.history) - 1

    @property
    def newer_page(self) -> int:
        """The page of newer bookings, 0 on the first."""
        return self.history_page - 1

    @property
    def older_page(self) -> int:
        """The page of older bookings, 0 when there are none."""
        return self.history_page + 1 if self.has_older else 0


@transaction.atomic
def customer_overview(*, acting: ActingContext, history_page: int = 1) -> CustomerOverview:
    """The locked customer's details, upcoming bookings (soonest first) and one page of the earlier and cancelled
    ones (newest first), with the register's contact details (`register_contact_show`: each showing recorded; the
    opening itself was recorded by the customer step, `customer_find_or_create`)."""
    customer = acting_customer(acting=acting)
    contact = register_contact_show(acting=acting, customer=customer)
    now = clock.now()
    upcoming = list(customer_bookings(customer=customer).upcoming(now=now).order_by("slot__starts_at"))
    history_page = max(history_page, 1)
    start = (history_page - 1) * HISTORY_PAGE_SIZE  # CustomerOverview.history_first - 1
    # One row more than a page tells whether there are older ones, without counting them all.
    history = list(customer_bookings(customer=customer).history(now=now)[start : start + HISTORY_PAGE_SIZE + 1])
    return CustomerOverview(
        customer=customer,
        contact=contact,
        upcoming=upcoming,
        history=history[:HISTORY_PAGE_SIZE],
        history_page=history_page,
        has_older=len(history) > HISTORY_PAGE_SIZE,
    )


def register_contact_show(*, acting: ActingContext, customer: Customer) -> RegisterContact | None:
    """The register's contact details of the acting partner's customer, to show or to fill a form with (never with
    non-disclosure: `register_contact`); each showing is recorded, wherever it is (the overview, the contact step).
    It writes one row, in the caller's transaction where there is one (no savepoint: the overview's reads stay few).
    Only of the customer this login locked (the callers have read it under the acting context already)."""
    if customer.pk is None or customer.pk != acting.customer_id:
        raise CustomerLockedError
    contact = register_contact(customer=customer)
    if contact is not None:
        audit_event_record(acting=acting, action=AuditEvent.Action.CONTACT_DETAILS_SHOWN, customer=customer)
    return contact


@dataclass(frozen=True)
class BookingDetails:
    booking: Booking
    contact: BookingContact | None  # what was typed for it, when the acting partner may see it


@transaction.atomic
def booking_details(*, acting: ActingContext, reference: str, just_confirmed: bool = False) -> BookingDetails:
    """The locked customer's booking by its reference (a 404 for anything else), with the contact details typed for
    it that the acting partner may see (`booking_contact`: only the organisation that made it, and with
    non-disclosure only on the confirmation). Each showing of them is recorded, as the overview records the
    register's."""
    booking = customer_booking(acting=acting, reference=reference)
    contact = booking_contact(acting=acting, booking=booking, just_confirmed=just_confirmed)
    if contact is not None:
        audit_event_record(
            acting=acting, action=AuditEvent.Action.CONTACT_DETAILS_SHOWN, customer=booking.customer, booking=booking
        )
    return BookingDetails(booking=booking, contact=contact)


@transaction.atomic
def customer_find_or_create(*, acting: ActingContext, identity_code: str) -> Customer:
    """The register's customer, or a new one the partner will give name and contact details for. A login that has
    locked a customer gets no other (DESIGN.md §4 rule 6): refused before anything is written. The opening is
    recorded here, once for the session that locks the customer (every later page of it is of this customer: its
    name, its bookings), and the customer keeps the time a partner last opened them, which the retention job counts
    as activity (RETENTION_CUSTOMER_DAYS)."""
    acting_organisation(acting=acting, step=Step.TERMS_ACCEPTED)
    customer = Customer.objects.with_identity_code(identity_code).first()
    if acting.customer_id is not None and (customer is None or customer.pk != acting.customer_id):
        raise CustomerLockedError
    if customer is None:
        try:
            with transaction.atomic():
                customer = Customer.objects.create(
                    identity_code=identity_code, source=Customer.Source.ENTERED_BY_PARTNER
                )
        except IntegrityError:  # another partner entered the same person a moment ago: the keyed index is unique
            customer = Customer.objects.with_identity_code(identity_code).get()
    customer.last_opened_at = clock.now()
    Customer.objects.filter(pk=customer.pk).update(last_opened_at=customer.last_opened_at)
    audit_event_record(acting=acting, action=AuditEvent.Action.CUSTOMER_OPENED, customer=customer)
    return customer


# --- The rules of a time: can it be booked, is there room (DESIGN.md §4 rule 1) ------------------------------------


def _lock_slots(**lookup: Any) -> dict[int, Slot]:
    """Lock the slots a change takes or frees capacity in, with their lines, by id. The lock every such write takes
    first (after the partner's row, before the customer and the booking); a move's two in id order, as all take them.
    """
    slots = Slot.objects.filter(**lookup).select_for_update(of=("self",)).select_related("service_line")
    return {slot.pk: slot for slot in slots.order_by("pk")}


def _ensure_bookable(slot: Slot | None, *, now: dt.datetime, instead_of: Slot | None = None) -> None:
    """A time can be booked while its line takes bookings and it lies in the bookable window (`bookable_window`);
    a booking moves only to another time of its line and language (`instead_of`, its time now)."""
    earliest, latest = bookable_window(now)
    if (
        slot is None
        or not slot.service_line.is_active
        or not earliest <= slot.starts_at <= latest
        or (instead_of is not None and not _same_matter(slot, instead_of))
    ):
        raise BookingError(_("This time cannot be booked. Choose another time."), reason="not_bookable")


def _same_matter(slot: Slot, other: Slot) -> bool:
    return slot.pk != other.pk and (slot.service_line_id, slot.language) == (other.service_line_id, other.language)


def _ensure_room(slot: Slot, *, now: dt.datetime, customer_id: int, changing: Booking | None = None) -> None:
    """Refuse when what takes capacity in the locked `slot` (but `changing`, the booking the change is about)
    reaches its capacity: `SlotFullError` with the nearest free times the customer may book instead."""
    taking = slot.bookings.taking_capacity(now=now)
    if changing is not None:
        taking = taking.exclude(pk=changing.pk)
    if taking.count() >= slot.capacity:
        raise SlotFullError(nearest_free_slots(slot=slot, now=now, customer_id=customer_id, excluding=changing))


# --- Holding a time -------------------------------------------------------------------------------------------------


def _partner_holds(acting: ActingContext) -> QuerySet[Booking]:
    return Booking.objects.filter(booked_by=acting.user, status=Booking.Status.HELD)


@counts_refusals("hold")
@transaction.atomic
def booking_hold(*, acting: ActingContext, slot_id: int) -> Booking:
    """Hold a time for the locked customer for BOOKING_HOLD_MINUTES, if it is bookable and has room.

    A partner holds one time at most: a new pick releases the old one. The partner's row is locked first, so two
    picks at once (two tabs, a double click) run one after the other and end in one hold.

    A time the customer may not book beside their upcoming bookings (DESIGN.md §4 rule 4) is refused here already,
    with the confirm's error, so that no crafted request holds one; the confirm decides again under the customer's
    lock.
    """
    if acting.step < Step.CUSTOMER_LOCKED:
        raise ActingRefusedError("step_missing")
    User.objects.lock(acting.user.pk)
    slot = _lock_slots(pk=slot_id).get(slot_id)
    organisation = acting_organisation(acting=acting)  # the registry and the clock after the locks
    now = clock.now()
    _partner_holds(acting).delete()
    _ensure_bookable(slot, now=now)
    _check_customer_rules(customer_id=acting.customer_id, slot=slot, now=now)
    _ensure_room(slot, now=now, customer_id=acting.customer_id)
    hold = _create_hold(acting=acting, slot=slot, organisation=organisation, now=now)
    # The event needs only the customer's keyed index (nothing decrypted). A released hold is deleted, so the event
    # names the hold rather than only linking to the row.
    hold.customer = Customer.objects.only("identity_code_digest").get(pk=acting.customer_id)
    audit_event_record(
        acting=acting,
        action=AuditEvent.Action.BOOKING_HELD,
        customer=hold.customer,
        details={"reference": hold.reference, "slot": slot.pk},
    )
    booking_changed(booking=hold, change=BookingChange.HELD)
    return hold


def _create_hold(*, acting: ActingContext, slot: Slot, organisation: Organisation, now: dt.datetime) -> Booking:
    for _attempt in range(5):
        reference = new_reference()
        try:
            with transaction.atomic():
                return Booking.objects.create(
                    reference=reference,
                    slot=slot,
                    customer_id=acting.customer_id,
                    status=Booking.Status.HELD,
                    hold_expires_at=now + dt.timedelta(minutes=settings.BOOKING_HOLD_MINUTES),
                    channel=Booking.Channel.PARTNER,
                    organisation=organisation,
                    booked_by=acting.user,
                )
        except IntegrityError:  # a reference drawn before (about one in 17 billion): draw again
            continue
    raise BookingError(_("The booking could not be saved. Please try again."), reason="not_saved")


# --- Confirming -----------------------------------------------------------------------------------------------------


@counts_refusals("confirm")
def booking_confirm(
    *, acting: ActingContext, hold_id: int, contact: ContactDetails, idempotency_key: uuid.UUID
) -> Booking:
    """Turn the hold the partner checked into a booking.

    - The same idempotency key again returns the booking it made (a double submit is harmless).
    - The hold must be this partner's current hold for the locked customer and organisation; otherwise
      `HoldChangedError` (another tab picked a time meanwhile).
    - An expired hold is taken again if the slot still has room; otherwise `SlotFullError` with nearby times.
    - A time that can no longer be booked (within the minimum notice now, or its line closed) is refused.
    - A customer has at most one active future booking per service line and never two overlapping ones.
    - The audit event and the announcement (the confirmation messages) are written in this transaction.
    """
    try:
        return _booking_confirm(acting=acting, hold_id=hold_id, contact=contact, idempotency_key=idempotency_key)
    except SlotFullError:
        # Hygiene after the refusal's rollback: the expired hold no longer counts; released, it is not offered again.
        Booking.objects.filter(
            pk=hold_id, booked_by=acting.user, status=Booking.Status.HELD, hold_expires_at__lte=clock.now()
        ).delete()
        raise


@transaction.atomic
def _booking_confirm(
    *, acting: ActingContext, hold_id: int, contact: ContactDetails, idempotency_key: uuid.UUID
) -> Booking:
    if acting.step < Step.CUSTOMER_LOCKED:
        raise ActingRefusedError("step_missing")
    slots = _lock_slots(bookings__pk=hold_id)
    customer = Customer.objects.select_for_update(no_key=True).get(pk=acting.customer_id)
    # The hold, and in the same read the booking this key already made, if any (a double submit, or the same submit
    # confirmed while this one waited for the locks): that booking is returned, never made twice.
    hold, earlier = None, None
    locked = (
        Booking.objects.select_for_update(of=("self",))
        .filter(Q(pk=hold_id, booked_by=acting.user) | Q(idempotency_key=idempotency_key))
        .order_by()  # no join to the slot for the default ordering
    )
    for booking in locked:
        if booking.idempotency_key == idempotency_key:
            earlier = booking
        if booking.pk == hold_id and booking.booked_by_id == acting.user.pk:
            hold = booking
    # The registry and the clock, both after the locks: a deactivation committed while this waited is seen.
    organisation = acting_organisation(acting=acting)
    now = clock.now()
    if earlier is not None:
        # Returned only to the context it was made in: a key from another partner's form, or from this partner's form
        # for another customer or organisation (an earlier sign-in), is never this booking's to show.
        if (earlier.booked_by_id, earlier.customer_id, earlier.organisation_id) != (
            acting.user.pk,
            customer.pk,
            organisation.pk,
        ):
            raise BookingError(_("The booking could not be saved. Please try again."), reason="not_saved")
        return earlier
    if (
        hold is None
        or hold.slot_id not in slots
        or hold.status != Booking.Status.HELD
        or hold.customer_id != customer.pk
        or hold.organisation_id != organisation.pk
    ):
        raise HoldChangedError
    slot = slots[hold.slot_id]
    _ensure_bookable(slot, now=now)
    if hold.hold_expires_at <= now:  # an unexpired hold has its place; an expired one takes it again if it is free
        _ensure_room(slot, now=now, customer_id=customer.pk, changing=hold)
    _check_customer_rules(customer_id=customer.pk, slot=slot, now=now, excluding=hold)
    if not contact.phone:
        raise BookingError(_("Give the telephone number Kela calls."), reason="phone_missing")

    hold.status = Booking.Status.CONFIRMED
    hold.hold_expires_at = None
    hold.confirmed_at = now
    hold.contact_phone = contact.phone
    hold.contact_email = contact.email
    hold.description = contact.description
    hold.interpreter_needed = bool(contact.interpreter_language)
    hold.interpreter_language = contact.interpreter_language
    hold.idempotency_key = idempotency_key
    hold.save(update_fields=[*CONFIRMED_FIELDS])
    details = {}
    names = customer_names_after_confirm(customer, first_name=contact.first_name, last_name=contact.last_name)
    if names != (customer.first_name, customer.last_name):
        # The names are the customer's, shown to every organisation that opens them: the event says they were given
        # or changed (not what they were), so who changed another partner's typing can be found.
        details["customer_names"] = "changed" if customer.first_name or customer.last_name else "entered"
        customer.first_name, customer.last_name = names
        customer.save(update_fields=["first_name", "last_name", "updated_at"])
    hold.slot, hold.customer = slot, customer
    audit_event_record(
        acting=acting, action=AuditEvent.Action.BOOKING_CONFIRMED, customer=customer, booking=hold, details=details
    )
    booking_changed(booking=hold, change=BookingChange.CONFIRMED)
    return hold


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


def _check_customer_rules(*, customer_id: int, slot: Slot, now: dt.datetime, excluding: Booking | None = None) -> None:
    """At most one active future booking per service line, and never two overlapping ones: raise the rule's error.
    The confirm and the move lock the customer's row first, so their bookings cannot change until it commits."""
    conflicts = sorted(  # seldom any: sorted here rather than by the database
        conflicting_bookings(customer_id=customer_id, slot=slot, now=now, excluding=excluding).select_related("slot"),
        key=lambda booking: booking.slot.starts_at,
    )
    same_line = next((booking for booking in conflicts if booking.slot.service_line_id == slot.service_line_id), None)
    if same_line is not None:
        raise MatterBookedError(same_line)
    if conflicts:
        raise TimeBookedError(conflicts[0])


# --- Cancelling -----------------------------------------------------------------------------------------------------


def _may_cancel(acting: ActingContext) -> Q:
    """Which bookings the acting user may cancel: a partner, the locked customer's (while the organisation may
    book); FPA staff with the change permission on bookings, any."""
    if acting.authenticated:
        acting_organisation(acting=acting)
        return Q(customer_id=acting.customer_id)
    if acting.user is not None and acting.user.is_staff and acting.user.has_perm("bookings.change_booking"):
        return Q()
    raise ActingRefusedError("step_missing")


@counts_refusals("cancel")
@transaction.atomic
def booking_cancel(*, acting: ActingContext, booking_id: int, reason: str = "") -> Booking:
    """Cancel a future booking; its capacity is free again in the same transaction; who, when and why are kept, the
    audit trail records it, and the announcement tells the customer."""
    scope = _may_cancel(acting)
    _lock_slots(bookings__pk=booking_id)  # the capacity it frees
    booking = (
        Booking.objects.select_for_update(of=("self",))
        .select_related("slot__service_line", "customer")
        .filter(scope, pk=booking_id)
        .first()
    )
    now = clock.now()
    if booking is None or booking.status != Booking.Status.CONFIRMED or booking.slot.starts_at <= now:
        raise BookingError(_("Only a booked time in the future can be cancelled."), reason="not_changeable")
    booking.status = Booking.Status.CANCELLED
    booking.cancelled_at = now
    booking.cancelled_by = acting.user
    booking.cancellation_reason = reason.strip()[:200]
    booking.save(update_fields=["status", "cancelled_at", "cancelled_by", "cancellation_reason"])
    audit_event_record(
        acting=acting,
        action=AuditEvent.Action.BOOKING_CANCELLED,
        customer=booking.customer,
        booking=booking,
        details={} if acting.authenticated else {"by": "admin"},
    )
    booking_changed(booking=booking, change=BookingChange.CANCELLED)
    return booking


# --- Moving ---------------------------------------------------------------------------------------------------------


@counts_refusals("move")
@transaction.atomic
def booking_move(*, acting: ActingContext, booking_id: int, slot_id: int) -> Booking:
    """Move the locked customer's upcoming booking to another time of the same matter and language, at the
    customer's request: in one transaction the new time is taken and the old one released, or nothing changes.

    The reference stays; the audit trail records both times, and the announcement tells the customer with one "your
    time has changed" message (its calendar entry keeps the UID with a higher SEQUENCE). Both slots are locked, in id
    order, before the customer and the booking, so a move never deadlocks against a hold, a confirm or another move.
    """
    if acting.step < Step.CUSTOMER_LOCKED:
        raise ActingRefusedError("step_missing")
    booking = Booking.objects.filter(pk=booking_id, customer_id=acting.customer_id).select_related("slot").first()
    if booking is None:
        raise BookingError(_("Only a booked time in the future can be moved."), reason="not_changeable")
    slots = _lock_slots(pk__in={booking.slot_id, slot_id})
    customer = Customer.objects.select_for_update(no_key=True).get(pk=acting.customer_id)
    booking = Booking.objects.select_for_update(of=("self",)).get(pk=booking_id)
    acting_organisation(acting=acting)  # the registry and the clock after the locks
    now = clock.now()
    old_slot, new_slot = slots.get(booking.slot_id), slots.get(slot_id)
    if old_slot is None:  # moved by another request while this one waited for the locks: read it again
        raise BookingError(_("The booking could not be saved. Please try again."), reason="not_saved")
    if booking.status != Booking.Status.CONFIRMED or old_slot.starts_at <= now:
        raise BookingError(_("Only a booked time in the future can be moved."), reason="not_changeable")
    _ensure_bookable(new_slot, now=now, instead_of=old_slot)
    _ensure_room(new_slot, now=now, customer_id=customer.pk, changing=booking)
    _check_customer_rules(customer_id=customer.pk, slot=new_slot, now=now, excluding=booking)

    booking.slot = new_slot
    booking.sequence += 1
    booking.reminded_at = None  # the reminder goes out the day before the new time
    booking.save(update_fields=["slot", "sequence", "reminded_at"])
    booking.customer = customer
    audit_event_record(
        acting=acting,
        action=AuditEvent.Action.BOOKING_MOVED,
        customer=customer,
        booking=booking,
        details={"from_slot": old_slot.pk, "to_slot": new_slot.pk},
    )
    booking_changed(booking=booking, change=BookingChange.MOVED)
    return booking
