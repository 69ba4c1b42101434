"""Reads of the bookings app, each in a fixed number of queries whatever the amount of history."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Exists, F, OuterRef, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.crypto import salted_hmac

from bookings.models import Booking, Customer, ServiceLine, Slot
from kelabooking import clock
from partners.context import ActingContext
from partners.services import acting_organisation
from registry.models import Organisation


def bookable_window(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Times after the minimum notice and within the booking horizon can be booked."""
    return (
        now + dt.timedelta(minutes=settings.BOOKING_MIN_NOTICE_MINUTES),
        now + dt.timedelta(weeks=settings.BOOKING_HORIZON_WEEKS),
    )


def free_slots(
    *,
    service_line: ServiceLine,
    language: str,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    limit: int | None = None,
    customer_id: int | None = None,
    excluding: Booking | None = None,
) -> list[Slot]:
    """Slots between `start` and `end` with room left, in one query (`taken` annotated on each); for a customer,
    only those they may book beside their upcoming bookings (`excluding` one of them: the booking being moved).

    The bookings are counted per slot in a correlated subquery, so each slot in the window is one lookup in the
    (slot, status) index: the cost follows the slots shown, not the size of the booking history. (A join with
    GROUP BY made PostgreSQL scan every booking once the history grew.) The customer's conflicts are one more such
    lookup a slot, in the (customer, status) index.
    """
    slots = (
        Slot.objects.filter(service_line=service_line, language=language, starts_at__gte=start, starts_at__lt=end)
        .with_taken(now=now)
        .filter(taken__lt=F("capacity"))
        .order_by("starts_at")
    )
    if customer_id is not None:
        conflicts = _conflicts(
            customer_id=customer_id,
            now=now,
            excluding=excluding,
            service_line=OuterRef("service_line"),
            starts_at=OuterRef("starts_at"),
            ends_at=OuterRef("ends_at"),
        )
        slots = slots.exclude(Exists(conflicts))
    return list(slots[:limit] if limit is not None else slots)


def nearest_free_slots(
    *, slot: Slot, now: dt.datetime, customer_id: int, excluding: Booking | None = None, count: int = 3
) -> list[Slot]:
    """The free times after `slot` of its line and language that the customer may book (`free_slots`)."""
    earliest, latest = bookable_window(now)
    candidates = free_slots(
        service_line=slot.service_line,
        language=slot.language,
        start=max(earliest, slot.starts_at),
        end=latest,
        now=now,
        customer_id=customer_id,
        excluding=excluding,
    )
    return [candidate for candidate in candidates if candidate.pk != slot.pk][:count]


@dataclass(frozen=True)
class FreeWeek:
    """One week of the free times of a line and language that a customer may book, and the next free time."""

    service_line: ServiceLine
    language: str
    first_free: Slot | None
    monday: dt.date
    days: list[tuple[dt.date, list[Slot]]]  # the local days that have free times, in order, with their times
    previous_monday: dt.date | None  # None when no time of the week before can be booked any more
    next_monday: dt.date | None  # None when the week after is beyond the horizon

    @property
    def sunday(self) -> dt.date:
        return self.monday + dt.timedelta(days=6)


def free_week(
    *,
    service_line: ServiceLine,
    language: str,
    customer_id: int,
    week: dt.date | None = None,
    excluding: Booking | None = None,
) -> FreeWeek:
    """The free times of `service_line` and `language` that the customer may book beside their upcoming bookings
    (`free_slots`; other than `excluding`, the booking being moved, whose own time is left out): the next one, and
    those of the week of `week` (any day of it, kept within the bookable window), by default of the next one's week.
    Weeks run Monday to Sunday in local time. Two queries."""
    now = clock.now()
    earliest, latest = bookable_window(now)

    def free(start: dt.datetime, end: dt.datetime, limit: int | None = None) -> list[Slot]:
        found = free_slots(
            service_line=service_line,
            language=language,
            start=start,
            end=end,
            now=now,
            limit=limit,
            customer_id=customer_id,
            excluding=excluding,
        )
        return [slot for slot in found if excluding is None or slot.pk != excluding.slot_id]

    first_free = next(iter(free(earliest, latest, limit=2)), None)  # two: the booking being moved may be the first
    first_day, last_day = timezone.localdate(earliest), timezone.localdate(latest)
    if week is not None:
        day = min(max(week, first_day), last_day)
    else:
        day = timezone.localdate(first_free.starts_at) if first_free else timezone.localdate(now)
    monday = day - dt.timedelta(days=day.weekday())

    week_start = max(_local_midnight(monday), earliest)
    week_end = min(_local_midnight(monday + dt.timedelta(days=7)), latest)
    days: dict[dt.date, list[Slot]] = {}
    for slot in free(week_start, week_end) if week_start < week_end else []:
        days.setdefault(timezone.localdate(slot.starts_at), []).append(slot)
    previous_monday, next_monday = monday - dt.timedelta(days=7), monday + dt.timedelta(days=7)
    return FreeWeek(
        service_line=service_line,
        language=language,
        first_free=first_free,
        monday=monday,
        days=sorted(days.items()),
        previous_monday=previous_monday if monday > first_day else None,
        next_monday=next_monday if next_monday <= last_day else None,
    )


def _local_midnight(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time()))


def conflicting_bookings(
    *, customer_id: int, slot: Slot, now: dt.datetime, excluding: Booking | None = None
) -> QuerySet[Booking]:
    """The customer's upcoming bookings that `slot` may not be booked beside (DESIGN.md §4 rule 4), other than
    `excluding`: one of the same matter, or one whose time overlaps (`BookingQuerySet.conflicting`)."""
    return _conflicts(
        customer_id=customer_id,
        now=now,
        excluding=excluding,
        service_line=slot.service_line_id,
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
    )


def _conflicts(
    *, customer_id: int, now: dt.datetime, excluding: Booking | None, service_line, starts_at, ends_at
) -> QuerySet[Booking]:
    conflicts = Booking.objects.filter(customer_id=customer_id).conflicting(
        now=now, service_line=service_line, starts_at=starts_at, ends_at=ends_at
    )
    return conflicts.exclude(pk=excluding.pk) if excluding is not None else conflicts


def booked_matters(*, customer: Customer) -> dict[int, Booking]:
    """The customer's upcoming booking of each matter they have one of, by service line id, with its slot.

    No time of these matters can be booked beside it (`conflicting_bookings`): the matter step says so beside each
    and refuses it there, rather than at the confirm, which still decides under the customer's lock.
    """
    return {booking.slot.service_line_id: booking for booking in upcoming_bookings(customer=customer)}


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


@dataclass(frozen=True)
class Cancellation:
    """How a cancelled booking's cancelling is shown to the acting partner: when, and, where `booking_cancellation`
    allows, by whom and why."""

    at: dt.datetime
    by_kela: bool  # by FPA staff: shown to everyone, as Kela
    by_name: str  # the partner who cancelled, or ""
    reason: str


def booking_cancellation(*, acting: ActingContext, booking: Booking) -> Cancellation | None:
    """The cancelling of `booking` as the acting partner may see it (DESIGN.md §4 rule 7, as for typed contact
    details): the partner's name and the reason typed are shown only to the organisation that made the booking and
    to the partner who cancelled it; anyone else sees when it was cancelled, and that Kela did it when Kela did. None
    for a booking that is not cancelled."""
    if booking.status != Booking.Status.CANCELLED or booking.cancelled_at is None:
        return None
    canceller = booking.cancelled_by
    by_kela = canceller is not None and not canceller.identity_code
    made_here = (
        booking.channel == Booking.Channel.PARTNER
        and booking.organisation is not None
        and booking.organisation.business_id == acting.organisation_business_id
    )
    if not (made_here or (canceller is not None and acting.user is not None and canceller.pk == acting.user.pk)):
        return Cancellation(at=booking.cancelled_at, by_kela=by_kela, by_name="", reason="")
    by_name = canceller.get_full_name() if canceller is not None and not by_kela else ""
    return Cancellation(at=booking.cancelled_at, by_kela=by_kela, by_name=by_name, reason=booking.cancellation_reason)


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


def customer_names_after_confirm(customer: Customer, *, first_name: str, last_name: str) -> tuple[str, str]:
    """The customer's names once a booking with these typed names is confirmed: a customer Kela's register does not
    know is named as the partner typed (a later booking's partner may correct them); the register's never change."""
    if not customer.in_register and (first_name or last_name):
        return first_name, last_name
    return customer.first_name, customer.last_name


def partner_hold(*, acting: ActingContext) -> Booking | None:
    """The partner's current hold for the locked customer and the acting organisation, while the organisation may
    still book: a partner holds one time at most (a constraint)."""
    return _partner_hold(acting, acting_organisation(acting=acting))


def acting_customer_and_hold(*, acting: ActingContext) -> tuple[Customer, Booking | None]:
    """The locked customer and the partner's current hold for them, with one look at the registry (the time step
    shows both)."""
    organisation = acting_organisation(acting=acting)
    return Customer.objects.get(pk=acting.customer_id), _partner_hold(acting, organisation)


def _partner_hold(acting: ActingContext, organisation: Organisation) -> Booking | None:
    """The hold this partner made for the locked customer while acting for `organisation`: one made for the same
    customer under another organisation (an earlier sign-in) is not this context's, which the confirm would refuse."""
    holds = (
        Booking.objects.filter(
            booked_by=acting.user,
            customer_id=acting.customer_id,
            organisation=organisation,
            status=Booking.Status.HELD,
        )
        .select_related("slot__service_line", "customer")
        # No ORDER BY: `.first()` would add one, and PostgreSQL may then walk that order through the whole history.
        .order_by()[:1]
    )
    return next(iter(holds), None)


def confirm_key(hold: Booking) -> uuid.UUID:
    """The idempotency key the check page's confirm form carries for `hold` (DESIGN.md §4 rule 3): the same for every
    showing of one hold, another for any other hold, and stored nowhere until the confirm; made from the hold's id and
    reference with the secret key, so that nobody can make another partner's key."""
    return uuid.UUID(bytes=salted_hmac("bookings.confirm_key", f"{hold.pk}:{hold.reference}").digest()[:16], version=4)


def hold_or_booking_made(*, acting: ActingContext, since: dt.datetime | None) -> tuple[Booking | None, Booking | None]:
    """The check step's one look: the partner's current hold, or, when there is none, the booking this partner
    confirmed for the locked customer `since` the draft was begun (the confirm committed but the session never heard
    of it, so the draft is still there), both for the acting organisation. One registry read."""
    organisation = acting_organisation(acting=acting)
    if (hold := _partner_hold(acting, organisation)) is not None:
        return hold, None
    if since is None:
        return None, None
    made = Booking.objects.filter(
        booked_by=acting.user, customer_id=acting.customer_id, organisation=organisation, confirmed_at__gte=since
    ).exclude(status=Booking.Status.HELD)
    return None, made.order_by("-confirmed_at").first()
