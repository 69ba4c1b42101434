"""Generating bookable slots ahead from the opening rules.

The rules are the source of truth for capacity that nobody has booked yet; once a slot has any booking, the rules may
only add room to it, never take it away, and never delete it. Running the generation again changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import holidays
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from bookings.models import Booking, ClosedDay, OpeningRule, Slot
from kelabooking import clock

# Opening hours are Helsinki wall-clock times whatever the server's zone: 09:00 stays 09:00 across DST changes.
SERVICE_TIMEZONE = ZoneInfo("Europe/Helsinki")
# Keeps every statement well below SQLite's limit on query parameters.
BATCH_SIZE = 500

SlotKey = tuple[int, str, dt.datetime]  # service line id, language, start (UTC)


@dataclass(frozen=True)
class SlotGenerationResult:
    created: int = 0
    updated: int = 0  # slots without bookings whose capacity or end was set to what the rules say
    raised: int = 0  # slots with bookings whose capacity the rules raised
    removed: int = 0  # future slots without bookings that no rule produces any more
    skipped_days: int = 0  # public holidays and closed days in the generated range


@dataclass
class _Target:
    ends_at: dt.datetime
    capacity: int


@transaction.atomic
def slots_generate(*, weeks: int, today: dt.date | None = None) -> SlotGenerationResult:
    """Make the slots from `today` through `weeks` weeks ahead (weeks × 7 days) match the opening rules.

    - No slots on Finnish public holidays (`holidays.Finland`) or on days inside a `ClosedDay` range.
    - Each active line's rules valid on a date and matching its weekday give consecutive slots of the line's
      partner appointment length from `opens_at`, each ending at or before `closes_at`, in Helsinki local time.
      Rules giving the same slot add up their agents.
    - A slot without bookings gets the rules' capacity (and end). A slot with any booking row (held, confirmed or
      cancelled) only ever has its capacity raised, so no booking made against it is pushed over capacity.
    - Future slots in the range that no rule produces any more are deleted when they have no bookings at all.
    - A slot set by hand in the admin (`set_by_hand`) is left exactly as it is.

    Slots about to change are locked first (as `booking_hold` locks them), and only then checked for bookings, so a
    booking made meanwhile cannot be overbooked by a lowered capacity.
    """
    if weeks < 0:
        raise ValueError("weeks must not be negative")
    today = today or clock.localnow().date()
    until = today + dt.timedelta(weeks=weeks)  # exclusive
    range_start, range_end = _local_midnight(today), _local_midnight(until)

    targets, skipped_days = _targets(today=today, until=until)
    existing = {
        (slot["service_line_id"], slot["language"], slot["starts_at"]): slot
        for slot in Slot.objects.filter(starts_at__gte=range_start, starts_at__lt=range_end).values(
            "pk", "service_line_id", "language", "starts_at", "ends_at", "capacity", "set_by_hand"
        )
    }
    # A slot an FPA admin added or changed is theirs: the rules neither change nor remove it.
    by_rules = {key: slot for key, slot in existing.items() if not slot["set_by_hand"]}

    now = clock.now()
    to_create = [
        Slot(service_line_id=line_id, language=language, starts_at=starts_at, **vars(target))
        for (line_id, language, starts_at), target in targets.items()
        if (line_id, language, starts_at) not in existing
    ]
    changing = {
        slot["pk"]: targets[key]
        for key, slot in by_rules.items()
        if key in targets and (slot["capacity"], slot["ends_at"]) != (targets[key].capacity, targets[key].ends_at)
    }
    orphans = [slot["pk"] for key, slot in by_rules.items() if key not in targets and slot["starts_at"] > now]

    locked, booked = _lock(list(changing) + orphans)
    to_update: list[Slot] = []
    raised = 0
    for pk, target in changing.items():
        if pk not in locked:  # deleted meanwhile
            continue
        capacity, ends_at = locked[pk]
        if pk not in booked:
            if (capacity, ends_at) != (target.capacity, target.ends_at):
                to_update.append(Slot(pk=pk, capacity=target.capacity, ends_at=target.ends_at))
        elif target.capacity > capacity:
            to_update.append(Slot(pk=pk, capacity=target.capacity, ends_at=ends_at))
            raised += 1

    # ignore_conflicts: a slot someone added meanwhile (another run, an admin) is left as it is.
    Slot.objects.bulk_create(to_create, batch_size=BATCH_SIZE, ignore_conflicts=True)
    Slot.objects.bulk_update(to_update, ["capacity", "ends_at"], batch_size=BATCH_SIZE)
    removable = [pk for pk in orphans if pk in locked and pk not in booked]
    for batch in _batches(removable):
        Slot.objects.filter(pk__in=batch).delete()

    return SlotGenerationResult(
        created=len(to_create),
        updated=len(to_update) - raised,
        raised=raised,
        removed=len(removable),
        skipped_days=skipped_days,
    )


def _targets(*, today: dt.date, until: dt.date) -> tuple[dict[SlotKey, _Target], int]:
    """What the rules say for each slot of the range, and how many days were skipped as closed."""
    closed = _closed_dates(today=today, until=until)
    rules = list(
        OpeningRule.objects.filter(service_line__is_active=True, valid_from__lt=until)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gte=today))
        .select_related("service_line")
    )
    rules_by_weekday: dict[int, list[OpeningRule]] = defaultdict(list)
    for rule in rules:
        rules_by_weekday[rule.weekday].append(rule)

    targets: dict[SlotKey, _Target] = {}
    skipped_days = 0
    for date in _dates(today, until):
        if date in closed:
            skipped_days += 1
            continue
        for rule in rules_by_weekday[date.weekday()]:
            if not rule.valid_from <= date <= (rule.valid_until or date):
                continue
            for starts_at, ends_at in _rule_slots(rule, date):
                key = (rule.service_line_id, rule.language, starts_at)
                if key in targets:
                    targets[key].capacity += rule.agents
                else:
                    targets[key] = _Target(ends_at=ends_at, capacity=rule.agents)
    return targets, skipped_days


def _closed_dates(*, today: dt.date, until: dt.date) -> set[dt.date]:
    closed = {
        date
        for date in holidays.Finland(years=range(today.year, until.year + 1))
        if today <= date < until  # the package's dict keys are dates
    }
    for closed_day in ClosedDay.objects.filter(date_from__lt=until, date_until__gte=today):
        last = min(closed_day.date_until, until - dt.timedelta(days=1))
        closed.update(_dates(max(closed_day.date_from, today), last + dt.timedelta(days=1)))
    return closed


def _rule_slots(rule: OpeningRule, date: dt.date) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """Consecutive slots from opening time, each ending at or before closing time; wall-clock, then UTC."""
    length = dt.timedelta(minutes=rule.service_line.partner_appointment_minutes)
    start = dt.datetime.combine(date, rule.opens_at)  # noqa: DTZ001 - local wall-clock time, zone attached below
    closes = dt.datetime.combine(date, rule.closes_at)  # noqa: DTZ001
    while start + length <= closes:
        yield _aware_utc(start), _aware_utc(start + length)
        start += length


def _aware_utc(local: dt.datetime) -> dt.datetime:
    return local.replace(tzinfo=SERVICE_TIMEZONE).astimezone(dt.UTC)


def _local_midnight(date: dt.date) -> dt.datetime:
    return _aware_utc(dt.datetime.combine(date, dt.time()))  # noqa: DTZ001 - local wall-clock time


def _dates(first: dt.date, until: dt.date) -> Iterator[dt.date]:
    for offset in range((until - first).days):
        yield first + dt.timedelta(days=offset)


def _lock(pks: list[int]) -> tuple[dict[int, tuple[int, dt.datetime]], set[int]]:
    """Lock the slots about to change, then see which have bookings: a booking writer locks the slot first too."""
    locked: dict[int, tuple[int, dt.datetime]] = {}
    booked: set[int] = set()
    for batch in _batches(pks):
        locked.update(
            (pk, (capacity, ends_at))
            for pk, capacity, ends_at in Slot.objects.select_for_update()
            .filter(pk__in=batch)
            .values_list("pk", "capacity", "ends_at")
        )
        booked.update(Booking.objects.filter(slot_id__in=batch).order_by().values_list("slot_id", flat=True).distinct())
    return locked, booked


def _batches(items: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(items), BATCH_SIZE):
        yield items[start : start + BATCH_SIZE]


@transaction.atomic
def slot_capacity_check(*, slot_id: int, capacity: int) -> None:
    """A slot's capacity is never set below what takes its capacity now (`taking_capacity`): `BookingError`.

    Locks the slot; called in the transaction that then saves the capacity (the admin's change form runs in one),
    the lock lasts until that save commits, so no hold or confirm can take a place in between. Atomic itself, so that
    on PostgreSQL a caller outside a transaction gets a check rather than an error.
    """
    from bookings.services.booking import BookingError

    slot = Slot.objects.select_for_update().get(pk=slot_id)
    taken = slot.bookings.taking_capacity(now=clock.now()).count()
    if capacity < taken:
        raise BookingError(
            _("Bookings and unexpired holds take %(taken)d places at this time: the capacity cannot be lower.")
            % {"taken": taken}
        )
