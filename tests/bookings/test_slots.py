"""Slot generation from the opening rules: holidays, closed days, DST, idempotence and what booked slots keep."""

from __future__ import annotations

import datetime as dt
import io
import math
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse

from bookings.models import Booking, ClosedDay, Customer, OpeningRule, ServiceLine, Slot
from bookings.services import BookingError, slot_capacity_check, slots_generate
from bookings.services.slots import SlotGenerationResult
from bookings.tasks import generate_slots_task

pytestmark = pytest.mark.django_db

HELSINKI = ZoneInfo("Europe/Helsinki")
MONDAY = dt.date(2027, 2, 8)  # a week with no public holidays
WEEKDAYS = range(5)


@pytest.fixture(autouse=True)
def _before_the_week():
    """Sunday noon before MONDAY: every generated slot is in the future unless a test travels elsewhere."""
    with time_machine.travel(dt.datetime(2027, 2, 7, 12, tzinfo=HELSINKI), tick=False):
        yield


def make_line(*, minutes: int = 45, **kwargs) -> ServiceLine:
    return ServiceLine.objects.create(
        name_fi="Toimeentulotuki",
        name_sv="Utkomststöd",
        name_en="Social assistance",
        partner_appointment_minutes=minutes,
        **kwargs,
    )


def make_rules(
    line: ServiceLine,
    *,
    weekdays=WEEKDAYS,
    language: str = "fi",
    opens: dt.time = dt.time(9),
    closes: dt.time = dt.time(16),
    agents: int = 2,
    valid_from: dt.date = dt.date(2026, 1, 1),
    valid_until: dt.date | None = None,
) -> list[OpeningRule]:
    return [
        OpeningRule.objects.create(
            service_line=line,
            language=language,
            weekday=weekday,
            opens_at=opens,
            closes_at=closes,
            agents=agents,
            valid_from=valid_from,
            valid_until=valid_until,
        )
        for weekday in weekdays
    ]


def book(slot: Slot, *, status: str = Booking.Status.CONFIRMED, hold_expires_at: dt.datetime | None = None) -> Booking:
    """A booking made by Kela's phone service (no partner needed), consistent for its status; a hold lasts ten
    minutes unless `hold_expires_at` says otherwise."""
    count = Booking.objects.count()
    customer = Customer.objects.create(identity_code=f"010190-9{count:02d}X", first_name="Aino", last_name="Asiakas")
    now = dt.datetime(2027, 2, 7, 12, tzinfo=HELSINKI)
    return Booking.objects.create(
        reference=f"TST-{count:04d}".replace("0", "A").replace("1", "B"),
        slot=slot,
        customer=customer,
        status=status,
        channel=Booking.Channel.KELA_PHONE_SERVICE,
        contact_phone="+358401234567" if status == Booking.Status.CONFIRMED else "",
        confirmed_at=now if status == Booking.Status.CONFIRMED else None,
        hold_expires_at=(hold_expires_at or now + dt.timedelta(minutes=10)) if status == Booking.Status.HELD else None,
        cancelled_at=now if status == Booking.Status.CANCELLED else None,
    )


def make_slot(*, capacity: int) -> Slot:
    starts_at = dt.datetime.combine(MONDAY, dt.time(9), tzinfo=HELSINKI)
    return Slot.objects.create(
        service_line=make_line(),
        language="fi",
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(minutes=45),
        capacity=capacity,
    )


def local_starts(**filters) -> list[dt.datetime]:
    return [slot.starts_at.astimezone(HELSINKI) for slot in Slot.objects.filter(**filters).order_by("starts_at")]


def snapshot() -> list[tuple]:
    return list(
        Slot.objects.order_by("pk").values_list("pk", "service_line", "language", "starts_at", "ends_at", "capacity")
    )


def slot_at(date: dt.date, hour: int, minute: int = 0, **filters) -> Slot:
    return Slot.objects.get(starts_at=dt.datetime.combine(date, dt.time(hour, minute), tzinfo=HELSINKI), **filters)


def test_slots__generate_a_normal_week__makes_nine_slots_a_weekday_within_opening_hours() -> None:
    line = make_line()
    make_rules(line, agents=2)

    result = slots_generate(weeks=1, today=MONDAY)

    assert result == SlotGenerationResult(created=45)
    monday = local_starts(starts_at__date__lt=MONDAY + dt.timedelta(days=1))
    assert [f"{start:%H:%M}" for start in monday] == [
        "09:00",
        "09:45",
        "10:30",
        "11:15",
        "12:00",
        "12:45",
        "13:30",
        "14:15",
        "15:00",
    ]
    last = slot_at(MONDAY, 15)
    assert last.ends_at.astimezone(HELSINKI).time() == dt.time(15, 45)  # 15:45–16:30 would end after closing
    assert {slot.capacity for slot in Slot.objects.all()} == {2}
    assert {slot.starts_at.astimezone(HELSINKI).date() for slot in Slot.objects.all()} == {
        MONDAY + dt.timedelta(days=offset) for offset in WEEKDAYS
    }
    assert all(slot.service_line == line and slot.language == "fi" for slot in Slot.objects.all())


def test_slots__generate_a_short_window__last_slot_ends_exactly_at_closing() -> None:
    make_rules(make_line(), weekdays=[OpeningRule.Weekday.TUESDAY], language="en", opens=dt.time(9), closes=dt.time(12))

    slots_generate(weeks=1, today=MONDAY)

    slots = list(Slot.objects.order_by("starts_at"))
    assert [f"{slot.starts_at.astimezone(HELSINKI):%H:%M}" for slot in slots] == ["09:00", "09:45", "10:30", "11:15"]
    assert slots[-1].ends_at.astimezone(HELSINKI).time() == dt.time(12)


def test_slots__generate_twice__changes_nothing() -> None:
    make_rules(make_line(), agents=3)
    make_rules(make_line(), language="sv", agents=1)
    slots_generate(weeks=2, today=MONDAY)
    first = snapshot()

    result = slots_generate(weeks=2, today=MONDAY)

    assert result == SlotGenerationResult()
    assert snapshot() == first


def test_slots__generate_thousands__takes_a_few_reads_and_one_insert_per_batch(django_assert_max_num_queries) -> None:
    for _index in range(4):
        line = make_line()
        make_rules(line, agents=2)
        make_rules(line, language="sv", agents=1)
    slots = 4 * 2 * 6 * 5 * 9  # six weeks without public holidays
    # A few reads, and one INSERT a batch: SQLite's 999 parameters fit 166 six-field rows.
    with django_assert_max_num_queries(5 + math.ceil(slots / (999 // 6))):
        result = slots_generate(weeks=6, today=MONDAY)
    assert result.created == slots
    with django_assert_max_num_queries(5):
        assert slots_generate(weeks=6, today=MONDAY) == SlotGenerationResult()


def test_slots__two_rules_for_the_same_slot__add_up_their_agents() -> None:
    line = make_line()
    make_rules(line, weekdays=[0], agents=2)
    make_rules(line, weekdays=[0], opens=dt.time(9), closes=dt.time(12), agents=1)

    slots_generate(weeks=1, today=MONDAY)

    assert slot_at(MONDAY, 9).capacity == 3
    assert slot_at(MONDAY, 11, 15).capacity == 3
    assert slot_at(MONDAY, 12).capacity == 2


def test_slots__generate_over_christmas__skips_the_public_holidays() -> None:
    make_rules(make_line())
    monday = dt.date(2026, 12, 21)  # Thursday 24th and Friday 25th are public holidays, so is Saturday 26th

    with time_machine.travel(dt.datetime(2026, 12, 20, 12, tzinfo=HELSINKI), tick=False):
        result = slots_generate(weeks=1, today=monday)

    days = {start.date() for start in local_starts()}
    assert days == {dt.date(2026, 12, 21), dt.date(2026, 12, 22), dt.date(2026, 12, 23)}
    assert result == SlotGenerationResult(created=27, skipped_days=3)


def test_slots__generate_over_may_day__skips_the_friday() -> None:
    make_rules(make_line())

    with time_machine.travel(dt.datetime(2026, 4, 26, 12, tzinfo=HELSINKI), tick=False):
        slots_generate(weeks=1, today=dt.date(2026, 4, 27))

    assert dt.date(2026, 5, 1) not in {start.date() for start in local_starts()}
    assert len(local_starts()) == 4 * 9


def test_slots__closed_day_range__gets_no_slots() -> None:
    make_rules(make_line())
    ClosedDay.objects.create(date_from=MONDAY + dt.timedelta(days=1), date_until=MONDAY + dt.timedelta(days=2))
    ClosedDay.objects.create(date_from=MONDAY - dt.timedelta(days=30), date_until=MONDAY - dt.timedelta(days=20))

    result = slots_generate(weeks=1, today=MONDAY)

    days = {start.date() for start in local_starts()}
    assert days == {MONDAY, MONDAY + dt.timedelta(days=3), MONDAY + dt.timedelta(days=4)}
    assert result.skipped_days == 2


def test_slots__rule_validity__limits_the_dates() -> None:
    line = make_line()
    make_rules(line, valid_from=MONDAY + dt.timedelta(days=1), valid_until=MONDAY + dt.timedelta(days=3))
    make_rules(make_line(is_active=False))

    slots_generate(weeks=1, today=MONDAY)

    assert {start.date() for start in local_starts()} == {MONDAY + dt.timedelta(days=offset) for offset in (1, 2, 3)}


@pytest.mark.parametrize(
    ("monday", "before", "after"),
    [
        (dt.date(2026, 3, 23), dt.timedelta(hours=2), dt.timedelta(hours=3)),  # to summer time on Sunday 29 March
        (dt.date(2026, 10, 19), dt.timedelta(hours=3), dt.timedelta(hours=2)),  # to winter time on Sunday 25 October
    ],
)
def test_slots__generate_across_a_dst_change__start_at_nine_local_time(
    monday: dt.date, before: dt.timedelta, after: dt.timedelta
) -> None:
    make_rules(make_line())

    with time_machine.travel(dt.datetime.combine(monday, dt.time(6), tzinfo=HELSINKI), tick=False):
        slots_generate(weeks=2, today=monday)

    first_of_day: dict[dt.date, dt.datetime] = {}
    for slot in Slot.objects.order_by("starts_at"):
        first_of_day.setdefault(slot.starts_at.astimezone(HELSINKI).date(), slot.starts_at)
    assert len(first_of_day) >= 8  # both weeks (less any public holiday)
    assert {starts_at.astimezone(HELSINKI).time() for starts_at in first_of_day.values()} == {dt.time(9)}
    offsets = {date: starts_at.astimezone(HELSINKI).utcoffset() for date, starts_at in first_of_day.items()}
    assert {offsets[date] for date in offsets if date < monday + dt.timedelta(days=6)} == {before}
    assert {offsets[date] for date in offsets if date > monday + dt.timedelta(days=6)} == {after}
    # Stored in UTC: 09:00 local is 07:00 or 06:00 UTC depending on the season.
    assert {starts_at.astimezone(dt.UTC).hour for starts_at in first_of_day.values()} == {
        9 - before.seconds // 3600,
        9 - after.seconds // 3600,
    }
    last = Slot.objects.order_by("starts_at").last()
    assert last.ends_at - last.starts_at == dt.timedelta(minutes=45)


def test_slots__rules_lowered__lower_empty_slots_and_keep_booked_ones() -> None:
    line = make_line()
    rules = make_rules(line, weekdays=[0], agents=3)
    slots_generate(weeks=1, today=MONDAY)
    confirmed, cancelled = slot_at(MONDAY, 9), slot_at(MONDAY, 9, 45)
    book(confirmed)
    book(cancelled, status=Booking.Status.CANCELLED)  # any booking row counts, even a cancelled one

    OpeningRule.objects.filter(pk=rules[0].pk).update(agents=1)
    result = slots_generate(weeks=1, today=MONDAY)

    assert result == SlotGenerationResult(updated=7)
    confirmed.refresh_from_db()
    cancelled.refresh_from_db()
    assert (confirmed.capacity, cancelled.capacity) == (3, 3)
    assert slot_at(MONDAY, 10, 30).capacity == 1

    OpeningRule.objects.filter(pk=rules[0].pk).update(agents=5)
    result = slots_generate(weeks=1, today=MONDAY)

    assert result == SlotGenerationResult(updated=7, raised=2)
    confirmed.refresh_from_db()
    assert confirmed.capacity == 5
    assert set(Slot.objects.values_list("capacity", flat=True)) == {5}


def test_slots__rule_removed__deletes_empty_future_slots_and_keeps_booked_and_past_ones() -> None:
    line = make_line()
    make_rules(line, weekdays=[0, 1])
    slots_generate(weeks=1, today=MONDAY)
    tuesday = MONDAY + dt.timedelta(days=1)
    booked = slot_at(tuesday, 12)
    book(booked, status=Booking.Status.HELD)

    OpeningRule.objects.filter(weekday=OpeningRule.Weekday.MONDAY).delete()
    OpeningRule.objects.filter(weekday=OpeningRule.Weekday.TUESDAY).update(valid_until=MONDAY)  # no longer on Tuesday
    with time_machine.travel(dt.datetime.combine(MONDAY, dt.time(12, 30), tzinfo=HELSINKI), tick=False):
        result = slots_generate(weeks=1, today=MONDAY)

    # Monday's slots before 12:30 have passed: history, not touched.
    assert [f"{start:%H:%M}" for start in local_starts(starts_at__date=MONDAY)] == [
        "09:00",
        "09:45",
        "10:30",
        "11:15",
        "12:00",
    ]
    assert list(Slot.objects.filter(starts_at__date=tuesday)) == [booked]
    assert result == SlotGenerationResult(removed=4 + 8)


def test_slots__line_deactivated__removes_its_empty_future_slots() -> None:
    line = make_line()
    make_rules(line, weekdays=[0])
    slots_generate(weeks=1, today=MONDAY)
    book(slot_at(MONDAY, 9))
    ServiceLine.objects.filter(pk=line.pk).update(is_active=False)

    result = slots_generate(weeks=1, today=MONDAY)

    assert result.removed == 8
    assert Slot.objects.count() == 1


def capacity_refused(slot: Slot, capacity: int) -> bool:
    try:
        slot_capacity_check(slot_id=slot.pk, capacity=capacity)
    except BookingError:
        return True
    return False


def test_slot__capacity_check__refuses_below_confirmed_and_unexpired_holds() -> None:
    slot = make_slot(capacity=4)
    book(slot)
    book(slot, status=Booking.Status.HELD)
    book(slot, status=Booking.Status.CANCELLED)  # frees its place

    with pytest.raises(BookingError, match="take 2 places"):
        slot_capacity_check(slot_id=slot.pk, capacity=1)
    assert [capacity_refused(slot, capacity) for capacity in (0, 1, 2, 3)] == [True, True, False, False]


def test_slot__capacity_check__accepts_once_the_hold_has_expired() -> None:
    slot = make_slot(capacity=3)
    book(slot)
    book(slot, status=Booking.Status.HELD, hold_expires_at=dt.datetime(2027, 2, 7, 12, 5, tzinfo=HELSINKI))

    assert capacity_refused(slot, 1)
    with time_machine.travel(dt.datetime(2027, 2, 7, 12, 5, tzinfo=HELSINKI), tick=False):  # the hold just ran out
        assert not capacity_refused(slot, 1)
    assert Slot.objects.get(pk=slot.pk).capacity == 3  # a check: the caller saves the new capacity


def test_generate_slots_command__prints_the_counts(settings) -> None:
    make_rules(make_line())
    out = io.StringIO()

    with time_machine.travel(dt.datetime.combine(MONDAY, dt.time(1, 15), tzinfo=HELSINKI), tick=False):
        call_command("generate_slots", "--weeks", "1", stdout=out)
        assert "created 45, updated 0, raised 0, removed 0; skipped 0 closed days" in out.getvalue()

        settings.SLOT_GENERATION_WEEKS = 2
        out = io.StringIO()
        call_command("generate_slots", stdout=out)
    assert "Slots for 2 weeks: created 45," in out.getvalue()


def test_generate_slots_command__zero_weeks__is_refused() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("generate_slots", "--weeks", "0")


def test_generate_slots_task__generates_the_configured_weeks(settings) -> None:
    make_rules(make_line())
    settings.SLOT_GENERATION_WEEKS = 1

    with time_machine.travel(dt.datetime.combine(MONDAY, dt.time(1, 15), tzinfo=HELSINKI), tick=False):
        outcome = generate_slots_task.delay().get()

    assert outcome == {"created": 45, "updated": 0, "raised": 0, "removed": 0, "skipped_days": 0}


def test_slots__set_by_hand_in_the_admin__left_as_it_is_by_generation(admin_client) -> None:
    line = make_line()
    make_rules(line, weekdays=[0], agents=2)
    slots_generate(weeks=1, today=MONDAY)
    lowered = slot_at(MONDAY, 9)
    change = reverse("admin:bookings_slot_change", args=[lowered.pk])
    response = admin_client.post(change, {"capacity": 1})
    assert response.status_code == 302, response.content
    extra = dt.datetime.combine(MONDAY, dt.time(17), tzinfo=HELSINKI)  # outside the rules' window
    response = admin_client.post(
        reverse("admin:bookings_slot_add"),
        {
            "service_line": line.pk,
            "language": "fi",
            "starts_at_0": extra.strftime("%Y-%m-%d"),
            "starts_at_1": "17:00",
            "ends_at_0": extra.strftime("%Y-%m-%d"),
            "ends_at_1": "17:45",
            "capacity": 4,
        },
    )
    assert response.status_code == 302, response.content

    result = slots_generate(weeks=1, today=MONDAY)

    lowered.refresh_from_db()
    assert (lowered.capacity, lowered.set_by_hand) == (1, True)
    assert Slot.objects.get(starts_at=extra).capacity == 4  # no rule produces it, yet it stays
    assert slot_at(MONDAY, 9, minute=45).capacity == 2  # the others still follow the rules
    assert result == SlotGenerationResult()
