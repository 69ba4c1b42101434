"""The time picker's week (`free_week`): the next free time and one local week of free times, Monday to Sunday,
kept within the bookable window; the page only renders it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings

from bookings.models import ServiceLine, Slot
from bookings.selectors import free_week
from tests.bookings.test_journey import customer as customer  # noqa: F401 - fixtures
from tests.bookings.test_journey import line as line  # noqa: F401
from tests.bookings.test_journey import open_customer, url
from tests.bookings.test_journey import organisation as organisation  # noqa: F401
from tests.bookings.test_journey import partner as partner  # noqa: F401
from tests.factories import BookingFactory, CustomerFactory

pytestmark = pytest.mark.django_db

HELSINKI = ZoneInfo("Europe/Helsinki")
WEDNESDAY = dt.date(2027, 2, 10)
MONDAY = dt.date(2027, 2, 8)


def local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=HELSINKI)


def slot(line: ServiceLine, day: dt.date, hour: int = 10) -> Slot:
    return Slot.objects.create(
        service_line=line,
        language="fi",
        starts_at=local(day, hour),
        ends_at=local(day, hour) + dt.timedelta(minutes=45),
        capacity=1,
    )


@pytest.fixture
def noon():
    with time_machine.travel(local(WEDNESDAY, 12), tick=False):
        yield


def week_of(line: ServiceLine, **kwargs):
    return free_week(service_line=line, language="fi", customer_id=CustomerFactory().pk, **kwargs)


def test_free_week__by_default__the_week_of_the_next_free_time(noon, line) -> None:
    slot(line, WEDNESDAY, hour=13)  # within the minimum notice
    thursday, friday = slot(line, WEDNESDAY + dt.timedelta(days=1)), slot(line, WEDNESDAY + dt.timedelta(days=2))
    slot(line, MONDAY + dt.timedelta(days=7))  # the week after

    week = week_of(line)

    assert (week.first_free, week.monday, week.sunday) == (thursday, MONDAY, MONDAY + dt.timedelta(days=6))
    assert week.days == [(thursday.starts_at.date(), [thursday]), (friday.starts_at.date(), [friday])]
    assert (week.previous_monday, week.next_monday) == (None, MONDAY + dt.timedelta(days=7))


def test_free_week__no_free_time__this_week_and_empty(noon, line) -> None:
    week = week_of(line)

    assert (week.first_free, week.monday, week.days) == (None, MONDAY, [])


@pytest.mark.parametrize(
    ("asked", "shown"),
    [
        pytest.param(dt.date(2026, 1, 1), MONDAY, id="past"),
        pytest.param(dt.date(2030, 1, 1), None, id="beyond-the-horizon"),
    ],
)
def test_free_week__asked_outside_the_window__the_nearest_bookable_week(noon, line, asked, shown) -> None:
    last_day = (local(WEDNESDAY, 12) + dt.timedelta(weeks=settings.BOOKING_HORIZON_WEEKS)).date()
    last_monday = last_day - dt.timedelta(days=last_day.weekday())

    week = week_of(line, week=asked)

    assert week.monday == (shown or last_monday)
    if shown:
        assert week.previous_monday is None
    else:
        assert (week.previous_monday, week.next_monday) == (last_monday - dt.timedelta(days=7), None)


def test_free_week__moving__the_bookings_own_time_left_out(noon, line) -> None:
    own = slot(line, WEDNESDAY + dt.timedelta(days=1))
    other = slot(line, WEDNESDAY + dt.timedelta(days=2))
    moving = BookingFactory.confirmed(slot=own)

    week = free_week(service_line=line, language="fi", customer_id=moving.customer_id, excluding=moving)

    assert week.first_free == other
    assert week.days == [(other.starts_at.date(), [other])]


SUNDAY = MONDAY + dt.timedelta(days=6)


@pytest.fixture
def sunday_night():
    with time_machine.travel(local(SUNDAY, 23), tick=False):
        yield


def test_time_page__late_on_sunday_evening__no_link_to_the_week_that_is_over(
    sunday_night, client, partner, customer, line
) -> None:
    """At 23:00 on Sunday the first bookable moment (two hours ahead) is already Monday in Helsinki, but still Sunday
    in UTC. The old page compared the Monday with the UTC date and linked to the week that was over."""
    open_customer(client)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    slot(line, SUNDAY + dt.timedelta(days=1))

    page = client.get(url("bookings:time")).content.decode()

    assert "Continue with the next free time" in page
    assert "Previous week" not in page
    assert "Next week" in page
