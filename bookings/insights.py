"""Reads of the capacity and demand view: counts only, each chart's numbers from a fixed number of grouped queries.

Every figure is a grouped count or sum computed by the database (`values().annotate()`), never a row per booking in
Python: the capacity of the next four weeks in two queries, and what was booked in three (`day_counts`), per day,
each finished day kept in the cache (counts only) since it cannot change any more. So a page costs the same number
of queries, and about the same time, with a thousand bookings or a million. Nothing here names a customer or an
organisation: the tables of who books and in which language show a count from 1 to 4 as "< 5" (`SMALL_CELL`), and
where a table would hide only one count, the next smallest is hidden too (`_complement_hidden`: the table's total is
known from the others, so one hidden count alone could be worked out). The CSV gives the same texts.

The tables are the charts' numbers, as the page shows them and as their CSV gives them (`Table`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import formats
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from bookings.languages import language_name
from bookings.models import SERVICE_LANGUAGES, Booking, ServiceLine, Slot
from bookings.services.slots import SERVICE_TIMEZONE
from partners.models import AuditEvent
from registry.models import Organisation

# Counts of bookings below this are shown as "< 5" where a group could be small enough to point at someone.
SMALL_CELL = 5
CAPACITY_DAYS = 28
DEMAND_WEEKS = 12
DEMAND_FIGURES = ("made", "year-earlier", "cancelled", "moved")  # each service line's rows, in this order
YEAR = dt.timedelta(weeks=52)  # the same ISO weeks a year earlier, Monday to Monday


@dataclass(frozen=True)
class Cell:
    """One number of a table: `value` for the chart (None when there is none to draw: closed, or a small count
    hidden), `text` as the table and the CSV give it, `status` a word for what the value means (CSS, tests)."""

    value: int | None
    text: str
    status: str = ""
    share: int | None = None  # per cent, for the capacity chart


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    cells: list[Cell]
    group: str = ""  # the figure of a demand row (made, year-earlier, cancelled, moved)
    panel: str = ""  # the service line of a demand row


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    top: str = ""  # the chart's two short lines of a day's label
    bottom: str = ""


@dataclass
class Table:
    """A chart's numbers: columns, then one row per series. `slug` names the chart in the page and its CSV."""

    slug: str
    title: str
    description: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    corner: str = ""  # the heading above the rows' labels

    @property
    def largest(self) -> int:
        return max((cell.value for row in self.rows for cell in row.cells if cell.value is not None), default=0)

    def csv_rows(self) -> list[list[str]]:
        """The table as the page shows it: the headings, then each row's label and cells' texts."""
        return [[self.corner, *(column.label for column in self.columns)]] + [
            [row.label, *(cell.text for cell in row.cells)] for row in self.rows
        ]


@dataclass(frozen=True)
class InsightsQuery:
    """What the filters chose: the period for the tables of languages and of who books, and the line and the service
    language that every chart is narrowed to (None: all)."""

    today: dt.date
    period_start: dt.date
    period_end: dt.date  # inclusive
    service_line: ServiceLine | None = None
    language: str = ""


@dataclass
class Insights:
    capacity: Table
    demand: Table
    languages: Table
    interpreters: Table
    organisation_kinds: Table
    channels: Table
    weeks: list[dt.date]
    year_earlier_shown: bool
    alert_percent: int

    @property
    def tables(self) -> list[Table]:
        return [self.capacity, self.demand, self.languages, self.interpreters, self.organisation_kinds, self.channels]

    def table(self, slug: str) -> Table:
        return next(table for table in self.tables if table.slug == slug)

    @property
    def demand_panels(self) -> list[Panel]:
        """The demand table turned for its chart: a panel per service line, in it each week with its figures."""
        panels: dict[str, Panel] = {}
        for row in self.demand.rows:
            panel = panels.setdefault(row.panel, Panel(label=row.panel, weeks=[[] for _column in self.demand.columns]))
            for figures, cell in zip(panel.weeks, row.cells, strict=True):
                figures.append((row.group, row.key, cell))
        return list(panels.values())


@dataclass(frozen=True)
class Panel:
    label: str
    weeks: list[list[tuple[str, str, Cell]]]  # per week: (figure, row key, cell)


CHARTS = ["capacity", "demand", "languages", "interpreters", "organisation-kinds", "channels"]


def default_period(today: dt.date) -> tuple[dt.date, dt.date]:
    """The twelve weeks the demand chart shows: from the Monday eleven weeks before this week's to today."""
    monday = today - dt.timedelta(days=today.weekday())
    return monday - dt.timedelta(weeks=DEMAND_WEEKS - 1), today


def capacity_and_demand(*, query: InsightsQuery, now: dt.datetime, lines: list[ServiceLine]) -> Insights:
    """Every chart's numbers for `query`, in five grouped queries whatever the amount of data (`day_counts` and
    `_capacity`). `lines` are the service lines to name (all of them, in their order: the filter's choices)."""
    if query.service_line is not None:
        lines = [line for line in lines if line.pk == query.service_line.pk]
    languages = [(code, name) for code, name in SERVICE_LANGUAGES if not query.language or code == query.language]
    weeks = _weeks(query.today)
    demand_days = _days(weeks[0] - YEAR, weeks[-1] - YEAR + dt.timedelta(weeks=1))
    demand_days += _days(weeks[0], weeks[-1] + dt.timedelta(weeks=1))
    period_days = _days(query.period_start, query.period_end + dt.timedelta(days=1))
    counts = day_counts(days=sorted(set(demand_days + period_days)), now=now)
    demand, year_earlier_shown = _demand(query=query, lines=lines, weeks=weeks, counts=counts)
    return Insights(
        capacity=_capacity(query=query, now=now, lines=lines, languages=languages),
        demand=demand,
        weeks=weeks,
        year_earlier_shown=year_earlier_shown,
        alert_percent=round(settings.CAPACITY_ALERT_SHARE * 100),
        **_who_and_what(query=query, languages=languages, counts=[counts[day] for day in period_days]),
    )


def _days(first: dt.date, until: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=offset) for offset in range((until - first).days)]


# --- Each day's counts, kept once the day is over ----------------------------------------------------------------
# What the demand chart and the tables of who books add up: per local day, the bookings made there grouped by line,
# language, kind of organisation, channel and interpreter language, the cancellations and the moves by line and
# language. Counts only. A day's figures cannot change once it is over (a booking is made, cancelled or moved at the
# moment it happens: `confirmed_at`, `cancelled_at`, the audit event's time), so a finished day is read from the
# database once and then from the cache; only the days not in the cache (today always) are counted, in three grouped
# queries. So a page costs the same whether the history holds a thousand bookings or a million.
DAY_CACHE_PREFIX = "bookings:insights:day:v1:"
DAY_CACHE_SECONDS = 8 * 24 * 60 * 60
# A day is kept only when it ended this long ago: a change in a transaction still open at midnight lands in it.
DAY_SETTLED_AFTER = dt.timedelta(minutes=15)


@dataclass
class DayCounts:
    made: list[tuple[int, str, str, str, str, int]] = field(default_factory=list)  # line, language, kind, channel,
    # interpreter language, bookings
    cancelled: list[tuple[int, str, int]] = field(default_factory=list)  # line, language, bookings
    moved: list[tuple[int, str, int]] = field(default_factory=list)


def day_counts(*, days: list[dt.date], now: dt.datetime) -> dict[dt.date, DayCounts]:
    """Each day's counts: from the cache where kept, the others counted together and the finished ones kept."""
    keys = {day: f"{DAY_CACHE_PREFIX}{day.isoformat()}" for day in days}
    cached = cache.get_many(keys.values())
    found = {day: DayCounts(*cached[key]) for day, key in keys.items() if key in cached}
    missing = [day for day in days if day not in found]
    if missing:
        counted = _count_days(missing)
        found.update(counted)
        settled = now - DAY_SETTLED_AFTER
        cache.set_many(
            {
                keys[day]: (counts.made, counts.cancelled, counts.moved)
                for day, counts in counted.items()
                if _local_midnight(day + dt.timedelta(days=1)) <= settled
            },
            DAY_CACHE_SECONDS,
        )
    return found


def _ranges(days: list[dt.date], field_name: str) -> Q:
    """`field_name` within the days (sorted), one range for each run of consecutive days."""
    condition = Q()
    start = previous = days[0]
    for day in [*days[1:], None]:
        if day is not None and day == previous + dt.timedelta(days=1):
            previous = day
            continue
        bounds = {f"{field_name}__gte": _local_midnight(start), f"{field_name}__lt": _local_midnight(previous)}
        bounds[f"{field_name}__lt"] += dt.timedelta(days=1)
        condition |= Q(**bounds)
        if day is not None:
            start = previous = day
    return condition


def _local_date(field_name: str) -> TruncDate:
    return TruncDate(field_name, tzinfo=SERVICE_TIMEZONE)


def _count_days(days: list[dt.date]) -> dict[dt.date, DayCounts]:
    counts = {day: DayCounts() for day in days}
    made = (
        Booking.objects.filter(_ranges(days, "confirmed_at"))
        .values_list(
            _local_date("confirmed_at"),
            "slot__service_line",
            "slot__language",
            "organisation__kind",
            "channel",
            "interpreter_language",
        )
        .annotate(count=Count("pk"))
        .order_by()
    )
    for day, line, language, kind, channel, interpreter, count in made:
        counts[day].made.append((line, language, kind or "", channel, interpreter, count))
    cancelled = (
        Booking.objects.filter(_ranges(days, "cancelled_at"))
        .exclude(confirmed_at=None)  # a released hold is deleted; this keeps out any other unconfirmed row
        .values_list(_local_date("cancelled_at"), "slot__service_line", "slot__language")
        .annotate(count=Count("pk"))
        .order_by()
    )
    for day, line, language, count in cancelled:
        counts[day].cancelled.append((line, language, count))
    moved = (
        AuditEvent.objects.filter(
            _ranges(days, "created_at"), action=AuditEvent.Action.BOOKING_MOVED, outcome=AuditEvent.Outcome.SUCCESS
        )
        .values_list(_local_date("created_at"), "booking__slot__service_line", "booking__slot__language")
        .annotate(count=Count("pk"))
        .order_by()
    )
    for day, line, language, count in moved:
        counts[day].moved.append((line, language, count))
    return counts


def _chosen(query: InsightsQuery, line: int, language: str) -> bool:
    return (query.service_line is None or line == query.service_line.pk) and (
        not query.language or language == query.language
    )


# --- 1. How full the coming weeks are ---------------------------------------------------------------------------


def _local_midnight(date: dt.date) -> dt.datetime:
    return dt.datetime.combine(date, dt.time(), tzinfo=SERVICE_TIMEZONE)


def _slots(query: InsightsQuery, start: dt.datetime, end: dt.datetime) -> Q:
    condition = Q(starts_at__gte=start, starts_at__lt=end)
    if query.service_line is not None:
        condition &= Q(service_line=query.service_line)
    if query.language:
        condition &= Q(language=query.language)
    return condition


def _capacity(
    *, query: InsightsQuery, now: dt.datetime, lines: list[ServiceLine], languages: list[tuple[str, object]]
) -> Table:
    """Per line, language and local day of the next four weeks (today first): places taken over capacity. Taken is
    what the booking services count (`taking_capacity`: confirmed bookings and unexpired holds). A day without
    capacity is closed: a public holiday, a closed day, a weekend, or no opening rule for the language that day."""
    days = [query.today + dt.timedelta(days=offset) for offset in range(CAPACITY_DAYS)]
    start, end = _local_midnight(days[0]), _local_midnight(days[-1] + dt.timedelta(days=1))
    day = TruncDate("starts_at", tzinfo=SERVICE_TIMEZONE)
    capacity = {
        (row["service_line"], row["language"], row["day"]): row["capacity"]
        for row in Slot.objects.filter(_slots(query, start, end))
        .values("service_line", "language", day=day)
        .annotate(capacity=Sum("capacity"))
        .order_by()
    }
    slot_day = TruncDate("slot__starts_at", tzinfo=SERVICE_TIMEZONE)
    taken = {
        (row["slot__service_line"], row["slot__language"], row["day"]): row["taken"]
        for row in Booking.objects.taking_capacity(now=now)
        .filter(slot__in=Slot.objects.filter(_slots(query, start, end)))
        .values("slot__service_line", "slot__language", day=slot_day)
        .annotate(taken=Count("pk"))
        .order_by()
    }
    alert = settings.CAPACITY_ALERT_SHARE
    table = Table(
        slug="capacity",
        title=_("How full the next four weeks are"),
        description=_(
            "Share of each day's capacity taken by confirmed bookings and unexpired holds, per service line and "
            "service language. Days at or above %(percent)d %% are marked “busy”, days with no room left “full”, "
            "days without capacity “closed”."
        )
        % {"percent": round(alert * 100)},
        columns=[
            Column(
                day.isoformat(),
                formats.date_format(day, "D j.n."),
                formats.date_format(day, "D"),
                f"{day.day}.{day.month}.",
            )
            for day in days
        ],
        corner=_("Service line, language"),
    )
    for line in lines:
        for code, name in languages:
            cells = []
            for date in days:
                places = capacity.get((line.pk, code, date), 0)
                booked = taken.get((line.pk, code, date), 0)
                cells.append(_capacity_cell(places=places, booked=booked, alert=alert))
            table.rows.append(Row(key=f"{line.pk}-{code}", label=f"{line.name}, {capfirst(name)}", cells=cells))
    return table


def _capacity_cell(*, places: int, booked: int, alert: float) -> Cell:
    if not places:
        return Cell(value=None, text=_("closed"), status="closed")
    share = min(100, booked * 100 // places)
    if booked >= places:
        status, word = "full", _("full")
    elif booked >= alert * places:
        status, word = "busy", _("busy")
    else:
        status, word = "", ""
    text = f"{share} %" + (f" {word}" if word else "")
    return Cell(value=booked, text=text, status=status, share=share)


# --- 2. Demand over time ----------------------------------------------------------------------------------------


def _weeks(today: dt.date) -> list[dt.date]:
    """The Mondays of the last twelve weeks, this week last."""
    monday = today - dt.timedelta(days=today.weekday())
    return [monday - dt.timedelta(weeks=DEMAND_WEEKS - 1 - index) for index in range(DEMAND_WEEKS)]


def _demand(
    *, query: InsightsQuery, lines: list[ServiceLine], weeks: list[dt.date], counts: dict[dt.date, DayCounts]
) -> tuple[Table, bool]:
    """Per service line and week (Monday to Sunday, Helsinki): the bookings made (confirmed, whatever became of them
    later), the same a year earlier, the cancellations of bookings and the moves to another time."""
    made: dict[tuple[int, dt.date], int] = defaultdict(int)
    cancelled: dict[tuple[int, dt.date], int] = defaultdict(int)
    moved: dict[tuple[int, dt.date], int] = defaultdict(int)
    for day, figures in counts.items():
        week = day - dt.timedelta(days=day.weekday())
        for line, language, _kind, _channel, _interpreter, count in figures.made:
            if _chosen(query, line, language):
                made[line, week] += count
        for line, language, count in figures.cancelled:
            if _chosen(query, line, language):
                cancelled[line, week] += count
        for line, language, count in figures.moved:
            if _chosen(query, line, language):
                moved[line, week] += count

    year_earlier_shown = any(made.get((line.pk, week - YEAR)) for line in lines for week in weeks)
    table = Table(
        slug="demand",
        title=_("Bookings made per week"),
        description=_(
            "Bookings made in each of the last twelve weeks (Monday to Sunday), per service line, with the same "
            "weeks a year earlier when there are data, and the cancellations and moves of each week."
        ),
        columns=[Column(week.isoformat(), _("week %(number)d") % {"number": week.isocalendar()[1]}) for week in weeks],
        corner=_("Service line, figure"),
    )
    measures = [("made", _("made"), made, dt.timedelta(0))]
    if year_earlier_shown:
        measures.append(("year-earlier", _("made a year earlier"), made, YEAR))
    measures += [
        ("cancelled", _("cancelled"), cancelled, dt.timedelta(0)),
        ("moved", _("moved"), moved, dt.timedelta(0)),
    ]
    for line in lines:
        for key, label, counts, shift in measures:
            cells = [_count_cell(counts.get((line.pk, week - shift), 0)) for week in weeks]
            table.rows.append(
                Row(key=f"{line.pk}-{key}", label=f"{line.name}: {label}", cells=cells, group=key, panel=line.name)
            )
    return table, year_earlier_shown


def _count_cell(count: int) -> Cell:
    return Cell(value=count, text=formats.number_format(count))


def _small_cell(count: int) -> Cell:
    """A count of bookings that may point at a person when small: 1 to 4 are "< 5", with nothing to draw."""
    if 0 < count < SMALL_CELL:
        return Cell(value=None, text=f"< {SMALL_CELL}", status="suppressed")
    return _count_cell(count)


def _complement_hidden(rows: list[Row]) -> list[Row]:
    """Secondary suppression in a one-column table of `_small_cell`s. Its total is known (the bookings of the period:
    the weekly chart and the other tables give it), so a single hidden count could be worked out by subtracting the
    rest from it. Where exactly one count is hidden, the smallest other count above zero is hidden too; two hidden
    counts tell only their sum. (With no other count above zero there is nothing to hide it among: the zeros and the
    total give it whatever is hidden.)"""
    if sum(row.cells[0].status == "suppressed" for row in rows) != 1:
        return rows
    shown = [row for row in rows if row.cells[0].value]
    if not shown:
        return rows
    smallest = min(shown, key=lambda row: row.cells[0].value)
    hidden = Cell(value=None, text=pgettext("a count not shown", "hidden"), status="suppressed")
    return [replace(row, cells=[hidden]) if row is smallest else row for row in rows]


# --- 3. and 4. Languages, interpretation, who books --------------------------------------------------------------


def _who_and_what(
    *, query: InsightsQuery, languages: list[tuple[str, object]], counts: list[DayCounts]
) -> dict[str, Table]:
    """Bookings made in the period (confirmed then, cancelled later or not): by service language, by interpreter
    language, by the kind of the booking organisation and by channel. Small counts are hidden (`_small_cell`), and
    one more where a table would hide only one (`_complement_hidden`)."""
    period = _("%(start)s–%(end)s") % {
        "start": formats.date_format(query.period_start, "j.n.Y"),
        "end": formats.date_format(query.period_end, "j.n.Y"),
    }
    by_language: dict[str, int] = defaultdict(int)
    by_kind: dict[str, int] = defaultdict(int)
    by_channel: dict[str, int] = defaultdict(int)
    by_interpreter: dict[str, int] = defaultdict(int)
    for figures in counts:
        for line, language, kind, channel, interpreter, count in figures.made:
            if not _chosen(query, line, language):
                continue
            by_language[language] += count
            by_kind[kind] += count
            by_channel[channel] += count
            if interpreter:
                by_interpreter[interpreter] += count
    interpreters = sorted(by_interpreter.items(), key=lambda item: (-item[1], item[0]))
    bookings = Column("bookings", _("Bookings"))
    return {
        "languages": Table(
            slug="languages",
            title=_("Bookings by service language"),
            description=_("Bookings made in the period %(period)s, by the language of the call.") % {"period": period},
            columns=[bookings],
            rows=_complement_hidden(
                [
                    Row(key=code, label=capfirst(name), cells=[_small_cell(by_language[code])])
                    for code, name in languages
                ]
            ),
            corner=_("Service language"),
        ),
        "interpreters": Table(
            slug="interpreters",
            title=_("Interpreter needs by language"),
            description=_("Bookings made in the period %(period)s that need an interpreter, by interpreter language.")
            % {"period": period},
            columns=[bookings],
            rows=_complement_hidden(
                [
                    Row(key=code, label=capfirst(language_name(code)), cells=[_small_cell(count)])
                    for code, count in interpreters
                ]
            ),
            corner=_("Interpreter language"),
        ),
        "organisation_kinds": Table(
            slug="organisation-kinds",
            title=_("Partner bookings by kind of organisation"),
            description=_("Bookings made by partners in the period %(period)s, by the kind of their organisation.")
            % {"period": period},
            columns=[bookings],
            rows=_complement_hidden(
                [
                    Row(key=kind, label=str(label), cells=[_small_cell(by_kind[kind])])
                    for kind, label in Organisation.Kind.choices
                ]
            ),
            corner=_("Kind of organisation"),
        ),
        "channels": Table(
            slug="channels",
            title=_("Bookings by channel"),
            description=_("Bookings made in the period %(period)s, by where they were made.") % {"period": period},
            columns=[bookings],
            rows=_complement_hidden(
                [
                    Row(key=channel, label=str(label), cells=[_small_cell(by_channel[channel])])
                    for channel, label in Booking.Channel.choices
                ]
            ),
            corner=pgettext("where a booking was made", "Channel"),
        ),
    }
