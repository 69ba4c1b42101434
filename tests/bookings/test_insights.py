"""The capacity and demand view (bookings/insights.py, SlotAdmin.capacity_demand_view): its numbers against a small
fixture counted by hand, who may see it, its filters, its CSV, and a bounded number of queries.

The fixture, at Wednesday 10 February 2027 10:00 in Helsinki (this week's Monday: 8 February), line A and line B:

- A fi, Thu 11.2. 09:00, capacity 3: 3 confirmed (a municipality's partner), made now.
- A fi, Fri 12.2. 09:00, capacity 4: 1 confirmed online (made now), 1 live hold, 1 expired hold.
- A sv, Tue 12.1. 09:00 (past), capacity 5: 2 confirmed with an Arabic interpreter and 1 cancelled on 7.1., all
  made on 5.1. by an organisation of the kind "other".
- B fi, Tue 20.1.2026 (a year earlier), capacity 3: 1 confirmed, made on 6.1.2026, "other" kind.
- B fi, Mon 15.2. 09:00, capacity 10: 9 confirmed (a municipality's), 5 of them with a Somali interpreter, made now;
  one moved (and one move refused).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from bookings import insights
from bookings.models import Booking
from bookings.permissions import CAPACITY_ADMIN_GROUP, CUSTOMER_SERVICE_GROUP
from partners.models import AuditEvent, User
from registry.models import Organisation
from tests.factories import BookingFactory, OrganisationFactory, ServiceLineFactory, SlotFactory

pytestmark = pytest.mark.django_db

HELSINKI = ZoneInfo("Europe/Helsinki")
NOW = dt.datetime(2027, 2, 10, 10, 0, tzinfo=HELSINKI)
URL = "admin:bookings_capacity_demand"


@pytest.fixture(autouse=True)
def _wednesday_morning():
    with time_machine.travel(NOW, tick=False):
        yield


def at(day: dt.date, hour: int = 9, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=HELSINKI)


def slot(line, language: str, when: dt.datetime, capacity: int):
    return SlotFactory(
        service_line=line, language=language, starts_at=when, ends_at=when + dt.timedelta(minutes=45), capacity=capacity
    )


@pytest.fixture
def lines():
    line_a = ServiceLineFactory(name_fi="Asumisen tuet", name_sv="Stöd för boende", name_en="Housing", position=1)
    line_b = ServiceLineFactory(name_fi="Työttömyys", name_sv="Arbetslöshet", name_en="Unemployment", position=2)
    return line_a, line_b


@pytest.fixture
def fixture(lines):
    line_a, line_b = lines
    now = at(dt.date(2027, 2, 10), 10)
    municipality = OrganisationFactory(kind=Organisation.Kind.MUNICIPALITY)
    other = OrganisationFactory(kind=Organisation.Kind.OTHER)
    thursday = slot(line_a, "fi", at(dt.date(2027, 2, 11)), 3)
    BookingFactory.confirmed_batch(3, slot=thursday, organisation=municipality, confirmed_at=now)
    friday = slot(line_a, "fi", at(dt.date(2027, 2, 12)), 4)
    BookingFactory.confirmed(
        slot=friday, channel=Booking.Channel.CUSTOMER_ONLINE, organisation=None, booked_by=None, confirmed_at=now
    )
    BookingFactory.held(slot=friday, organisation=municipality)
    BookingFactory.held(slot=friday, organisation=municipality, expires_at=now - dt.timedelta(minutes=1))
    past = slot(line_a, "sv", at(dt.date(2027, 1, 12)), 5)
    made = at(dt.date(2027, 1, 5), 10)
    BookingFactory.confirmed_batch(
        2, slot=past, organisation=other, confirmed_at=made, interpreter_needed=True, interpreter_language="ar"
    )
    BookingFactory.cancelled(slot=past, organisation=other, confirmed_at=made, cancelled_at=at(dt.date(2027, 1, 7)))
    year_ago = slot(line_b, "fi", at(dt.date(2026, 1, 20)), 3)
    BookingFactory.confirmed(slot=year_ago, organisation=other, confirmed_at=at(dt.date(2026, 1, 6)))
    monday = slot(line_b, "fi", at(dt.date(2027, 2, 15)), 10)
    busy = BookingFactory.confirmed_batch(4, slot=monday, organisation=municipality, confirmed_at=now)
    busy += BookingFactory.confirmed_batch(
        5, slot=monday, organisation=municipality, confirmed_at=now, interpreter_needed=True, interpreter_language="so"
    )
    AuditEvent.objects.create(action=AuditEvent.Action.BOOKING_MOVED, booking=busy[0])
    AuditEvent.objects.create(
        action=AuditEvent.Action.BOOKING_MOVED, booking=busy[1], outcome=AuditEvent.Outcome.REFUSED
    )
    return line_a, line_b


def staff(group: str | None = None, **kwargs) -> User:
    user = User.objects.create_user(username=f"staff-{group or 'super'}", password="x", is_staff=True, **kwargs)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def capacity_client(client):
    client.force_login(staff(CAPACITY_ADMIN_GROUP))
    return client


def page(client, **params):
    response = client.get(reverse(URL), params, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200, response.content[:2000]
    return response.context["insights"]


def texts(table: insights.Table) -> dict[str, list[str]]:
    return {row.key: [cell.text for cell in row.cells] for row in table.rows}


def download(client, chart: str, **params) -> list[list[str]]:
    response = client.get(reverse(URL), {**params, "csv": chart}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="{chart}-2027-02-10.csv"' in response["Content-Disposition"]
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_capacity_demand__capacity__counts_bookings_and_live_holds_per_day(capacity_client, fixture) -> None:
    line_a, line_b = fixture
    capacity = page(capacity_client).capacity
    days = [column.key for column in capacity.columns]
    assert days[0] == "2027-02-10"
    assert len(days) == 28
    cells = {row.key: dict(zip(days, row.cells, strict=True)) for row in capacity.rows}
    assert cells[f"{line_a.pk}-fi"]["2027-02-11"].text == "100 % full"
    assert cells[f"{line_a.pk}-fi"]["2027-02-11"].status == "full"
    # One confirmed booking and one live hold of four places; the expired hold no longer counts.
    assert cells[f"{line_a.pk}-fi"]["2027-02-12"].text == "50 %"
    assert cells[f"{line_a.pk}-fi"]["2027-02-12"].status == ""
    assert cells[f"{line_b.pk}-fi"]["2027-02-15"].text == "90 % busy"  # CAPACITY_ALERT_SHARE 0.9: 9 of 10
    assert cells[f"{line_a.pk}-fi"]["2027-02-13"].status == "closed"  # Saturday: no slots
    assert cells[f"{line_a.pk}-fi"]["2027-02-13"].text == "closed"
    assert all(cell.status == "closed" for cell in cells[f"{line_a.pk}-sv"].values())
    assert [row.key for row in capacity.rows] == [
        f"{line.pk}-{code}" for line in fixture for code in ("fi", "sv", "en")
    ]


def test_capacity_demand__capacity__threshold_comes_from_settings(capacity_client, fixture, settings) -> None:
    line_a, line_b = fixture
    settings.CAPACITY_ALERT_SHARE = 0.5
    capacity = page(capacity_client).capacity
    friday = next(row for row in capacity.rows if row.key == f"{line_a.pk}-fi").cells[2]
    assert friday.text == "50 % busy"


def test_capacity_demand__demand__counts_made_cancelled_moved_and_a_year_earlier(capacity_client, fixture) -> None:
    line_a, line_b = fixture
    found = page(capacity_client)
    weeks = [column.key for column in found.demand.columns]
    assert weeks[0] == "2026-11-23"
    assert weeks[-1] == "2027-02-08"
    assert found.year_earlier_shown
    rows = {key: dict(zip(weeks, cells, strict=True)) for key, cells in texts(found.demand).items()}
    assert rows[f"{line_a.pk}-made"]["2027-02-08"] == "4"  # 3 + 1 confirmed; holds are not bookings made
    assert rows[f"{line_a.pk}-made"]["2027-01-04"] == "3"  # the cancelled one was made too
    assert rows[f"{line_a.pk}-cancelled"]["2027-01-04"] == "1"
    assert rows[f"{line_b.pk}-made"]["2027-02-08"] == "9"
    assert rows[f"{line_b.pk}-year-earlier"]["2027-01-04"] == "1"  # week of 5.1.2026, 52 weeks before
    assert rows[f"{line_b.pk}-moved"]["2027-02-08"] == "1"  # the refused move does not count
    total = sum(int(text) for cells in rows.values() for text in cells.values())
    assert total == 4 + 3 + 1 + 9 + 1 + 1


def test_capacity_demand__who_and_what__hides_counts_below_five_and_one_more_beside_a_lone_one(
    capacity_client, fixture
) -> None:
    """Made in the last twelve weeks: 4 + 3 (line A) + 9 (line B) = 16, which the weekly chart gives. A lone "< 5" in a
    table could be worked out from that total (16 - 13 = 3 Swedish), so the smallest other count above zero is hidden
    beside it; a zero stays (it tells nothing the total does not)."""
    found = page(capacity_client)
    assert sum(int(text) for key, cells in texts(found.demand).items() if key.endswith("-made") for text in cells) == 16
    assert texts(found.languages) == {"fi": ["hidden"], "sv": ["< 5"], "en": ["0"]}
    assert texts(found.interpreters) == {"so": ["hidden"], "ar": ["< 5"]}
    assert texts(found.organisation_kinds) == {
        "municipality": ["hidden"],
        "joint_municipal_authority": ["0"],
        "other": ["< 5"],
    }
    assert texts(found.channels) == {"partner": ["hidden"], "customer_online": ["< 5"], "kela_phone_service": ["0"]}
    for table in (found.languages, found.interpreters, found.organisation_kinds, found.channels):
        for cell in (row.cells[0] for row in table.rows if row.cells[0].text in ("< 5", "hidden")):
            assert cell.value is None  # nothing to draw: a bar's length would tell the count
            assert cell.status == "suppressed"


def _counts(*counts: int) -> list[insights.Row]:
    return [
        insights.Row(key=str(n), label=str(n), cells=[insights._small_cell(count)]) for n, count in enumerate(counts)
    ]


@pytest.mark.parametrize(
    ("counts", "shown"),
    [
        ((120, 3, 10), ["120", "< 5", "hidden"]),  # the smallest other count goes with the lone small one
        ((120, 3, 10, 10), ["120", "< 5", "hidden", "10"]),  # of equal ones, the first
        ((120, 3, 2, 10), ["120", "< 5", "< 5", "10"]),  # two hidden already: only their sum can be worked out
        ((120, 3, 0), ["hidden", "< 5", "0"]),  # zeros are not hidden, nor chosen to hide among
        ((0, 3, 0), ["0", "< 5", "0"]),  # nothing above zero to hide it among
        ((120, 40, 10), ["120", "40", "10"]),  # nothing small: nothing hidden
        ((), []),
    ],
)
def test_complement_hidden__a_lone_hidden_count__is_hidden_among_another(counts, shown) -> None:
    with translation.override("en"):
        assert [row.cells[0].text for row in insights._complement_hidden(_counts(*counts))] == shown


def test_capacity_demand__period__narrows_who_and_what(capacity_client, fixture) -> None:
    found = page(capacity_client, start="2026-01-01", end="2026-01-31")
    assert texts(found.languages) == {"fi": ["< 5"], "sv": ["0"], "en": ["0"]}
    assert texts(found.organisation_kinds)["other"] == ["< 5"]
    assert texts(found.interpreters) == {}


def test_capacity_demand__service_line_and_language__narrow_every_chart(capacity_client, fixture) -> None:
    line_a, line_b = fixture
    found = page(capacity_client, service_line=line_b.pk, language="fi")
    assert [row.key for row in found.capacity.rows] == [f"{line_b.pk}-fi"]
    assert {row.key for row in found.demand.rows} == {f"{line_b.pk}-{key}" for key in insights.DEMAND_FIGURES}
    assert texts(found.languages) == {"fi": ["9"]}
    assert texts(found.channels)["partner"] == ["9"]
    assert texts(page(capacity_client, language="sv").languages) == {"sv": ["< 5"]}


@pytest.mark.parametrize("chart", insights.CHARTS)
def test_capacity_demand__csv__gives_exactly_the_table(capacity_client, fixture, chart) -> None:
    table = page(capacity_client).table(chart)
    rows = download(capacity_client, chart)
    assert rows == table.csv_rows()
    assert rows[0][1:] == [column.label for column in table.columns]
    assert [row[0] for row in rows[1:]] == [row.label for row in table.rows]


def test_capacity_demand__csv__of_languages_in_english(capacity_client, fixture) -> None:
    assert download(capacity_client, "languages") == [
        ["Service language", "Bookings"],
        ["Finnish", "hidden"],
        ["Swedish", "< 5"],
        ["English", "0"],
    ]


def test_capacity_demand__csv__follows_the_filters(capacity_client, fixture) -> None:
    _line_a, line_b = fixture
    assert download(capacity_client, "channels", service_line=line_b.pk) == [
        ["Channel", "Bookings"],
        ["Partner organisation", "9"],
        ["The customer online", "0"],
        ["Kela's phone service", "0"],
    ]


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"start": "2027-02-01", "end": "2027-01-01"}, "end", "The end of the period cannot be before its start."),
        ({"start": "1.2.2027"}, "start", "Give the date in the form YYYY-MM-DD."),
        ({"end": "9999-12-31"}, "end", "Give a date between 2000 and 2099."),
        ({"start": "2025-01-01", "end": "2027-01-01"}, "start", "Choose a period of at most a year."),
        ({"service_line": "abc"}, "service_line", "Choose a service line from the list."),
        ({"service_line": "999999"}, "service_line", "Choose a service line from the list."),
        ({"language": "de"}, "language", "Choose a language from the list."),
        ({"csv": "customers"}, "csv", None),
    ],
)
def test_capacity_demand__bad_filters__answer_400_with_the_error(capacity_client, fixture, params, field, message):
    response = capacity_client.get(reverse(URL), params, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400
    assert field in response.context["form"].errors
    if message:
        assert message in response.content.decode()
    assert "insights" not in response.context


def test_capacity_demand__bad_filters__are_translated(capacity_client, fixture) -> None:
    response = capacity_client.get(
        reverse(URL), {"start": "2027-02-01", "end": "2027-01-01"}, HTTP_ACCEPT_LANGUAGE="fi"
    )
    assert response.status_code == 400
    assert response.context["form"].errors["end"] != ["The end of the period cannot be before its start."]


@pytest.mark.parametrize(
    ("group", "superuser", "status"),
    [
        (CAPACITY_ADMIN_GROUP, False, 200),
        (None, True, 200),
        (CUSTOMER_SERVICE_GROUP, False, 403),
        (None, False, 403),
    ],
)
def test_capacity_demand__permission__capacity_admins_and_superusers_only(client, fixture, group, superuser, status):
    client.force_login(staff(group, is_superuser=superuser))
    assert client.get(reverse(URL)).status_code == status
    assert client.get(reverse(URL), {"csv": "languages"}).status_code == status


def test_capacity_demand__anonymous__is_sent_to_the_login(client, fixture) -> None:
    response = client.get(reverse(URL), {"csv": "languages"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_capacity_demand__admin_index__links_it_for_capacity_admins_only(client, fixture) -> None:
    link = f'href="{reverse(URL)}"'
    client.force_login(staff(CAPACITY_ADMIN_GROUP))
    assert link in client.get(reverse("admin:index")).content.decode()
    assert link in client.get(reverse("admin:bookings_slot_changelist")).content.decode()  # the navigation sidebar
    client.force_login(staff(CUSTOMER_SERVICE_GROUP))
    assert link not in client.get(reverse("admin:index")).content.decode()


def test_capacity_demand__page__names_no_customer_or_organisation(capacity_client, fixture) -> None:
    response = capacity_client.get(reverse(URL), HTTP_ACCEPT_LANGUAGE="en")
    content = response.content.decode()
    for booking in Booking.objects.select_related("customer", "organisation"):
        assert booking.customer.last_name not in content
        assert booking.reference not in content
        if booking.organisation:
            assert booking.organisation.name not in content


def test_capacity_demand__queries__stay_the_same_whatever_the_data(capacity_client, fixture) -> None:
    line_a, line_b = fixture

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert capacity_client.get(reverse(URL)).status_code == 200
        return len(captured)

    before = queries()
    assert before <= 12
    for day in range(1, 6):
        for line in (line_a, line_b):
            more = slot(line, "en", at(dt.date(2027, 2, 10) + dt.timedelta(days=day), 11), 3)
            BookingFactory.confirmed_batch(2, slot=more, interpreter_needed=True, interpreter_language=f"x{day}")
    assert queries() == before


def test_capacity_demand__page__bounded_queries(capacity_client, fixture, django_assert_max_num_queries) -> None:
    with django_assert_max_num_queries(12):
        capacity_client.get(reverse(URL), {"start": "2026-06-01", "end": "2027-02-10"})


def test_capacity_demand__finished_days__are_counted_once_and_kept(capacity_client, fixture) -> None:
    line_a, _line_b = fixture
    first = page(capacity_client)
    week = [column.key for column in first.demand.columns].index("2027-01-04")
    kept = cache.get(f"{insights.DAY_CACHE_PREFIX}2027-01-05")
    assert kept is not None
    assert sum(count for *_group, count in kept[0]) == 3  # line A's three bookings made on 5.1.
    assert cache.get(f"{insights.DAY_CACHE_PREFIX}2027-02-10") is None  # today is never kept
    # Today goes on counting: a booking made now shows at once.
    BookingFactory.confirmed(slot=slot(line_a, "fi", at(dt.date(2027, 2, 16)), 3), confirmed_at=NOW)
    with CaptureQueriesContext(connection) as captured:
        second = page(capacity_client)
    assert texts(second.demand)[f"{line_a.pk}-made"][-1] == "5"
    assert texts(second.demand)[f"{line_a.pk}-made"][week] == "3"
    # The kept days are not read again: the bookings' queries ask for today only (one range a field).
    made_query = next(
        query["sql"] for query in captured if "GROUP BY" in query["sql"] and "confirmed_at" in query["sql"]
    )
    assert made_query.count('"bookings_booking"."confirmed_at" >=') == 1
