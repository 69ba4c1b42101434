"""Reads of the capacity and demand view: counts only, each chart's numbers in a fixed number of grouped queries.

Every figure is a grouped count or sum computed by the database (`values().annotate()`), never a row per booking in
Python, so a page costs the same number of queries with a thousand bookings or a million; the windows read are
bounded (four weeks of slots, twelve weeks of bookings and the same weeks a year earlier, a period of at most a
year) and found through indexes. Nothing here names a customer or an organisation: the tables of who books and in
which language show a count from 1 to 4 as "< 5" (`SMALL_CELL`), and those numbers never leave this module.

The tables are the charts' numbers, as the page shows them and as their CSV gives them (`Table`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate, TruncWeek
from django.utils import formats, timezone
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
    """Every chart's numbers for `query`: nine grouped queries whatever the amount of data. `lines` are the service
    lines to name (all of them, in their order: the filter's choices)."""
    if query.service_line is not None:
        lines = [line for line in lines if line.pk == query.service_line.pk]
    languages = [(code, name) for code, name in SERVICE_LANGUAGES if not query.language or code == query.language]
    weeks = _weeks(query.today)
    demand, year_earlier_shown = _demand(query=query, lines=lines, weeks=weeks)
    return Insights(
        capacity=_capacity(query=query, now=now, lines=lines, languages=languages),
        demand=demand,
        weeks=weeks,
        year_earlier_shown=year_earlier_shown,
        alert_percent=round(settings.CAPACITY_ALERT_SHARE * 100),
        **_who_and_what(query=query, languages=languages),
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


def _week_of(value: dt.datetime) -> dt.date:
    return timezone.localtime(value, SERVICE_TIMEZONE).date()


def _booking_filters(query: InsightsQuery, prefix: str = "slot__") -> Q:
    condition = Q()
    if query.service_line is not None:
        condition &= Q(**{f"{prefix}service_line": query.service_line})
    if query.language:
        condition &= Q(**{f"{prefix}language": query.language})
    return condition


def _demand(*, query: InsightsQuery, lines: list[ServiceLine], weeks: list[dt.date]) -> tuple[Table, bool]:
    """Per service line and week (Monday to Sunday, Helsinki): the bookings made (confirmed, whatever became of them
    later), the same a year earlier, the cancellations of bookings and the moves to another time."""
    first, end = _local_midnight(weeks[0]), _local_midnight(weeks[-1] + dt.timedelta(weeks=1))
    now_and_then = Q(confirmed_at__gte=first, confirmed_at__lt=end) | Q(
        confirmed_at__gte=first - YEAR, confirmed_at__lt=end - YEAR
    )
    made: dict[tuple[int, dt.date], int] = defaultdict(int)
    for row in (
        Booking.objects.filter(now_and_then, _booking_filters(query))
        .values("slot__service_line", week=TruncWeek("confirmed_at", tzinfo=SERVICE_TIMEZONE))
        .annotate(count=Count("pk"))
        .order_by()
    ):
        made[row["slot__service_line"], _week_of(row["week"])] += row["count"]
    cancelled: dict[tuple[int, dt.date], int] = defaultdict(int)
    for row in (
        Booking.objects.filter(_booking_filters(query), cancelled_at__gte=first, cancelled_at__lt=end)
        .exclude(confirmed_at=None)  # a released hold is deleted; this keeps out any other unconfirmed row
        .values("slot__service_line", week=TruncWeek("cancelled_at", tzinfo=SERVICE_TIMEZONE))
        .annotate(count=Count("pk"))
        .order_by()
    ):
        cancelled[row["slot__service_line"], _week_of(row["week"])] += row["count"]
    moved: dict[tuple[int, dt.date], int] = defaultdict(int)
    for row in (
        AuditEvent.objects.filter(
            _booking_filters(query, prefix="booking__slot__"),
            action=AuditEvent.Action.BOOKING_MOVED,
            outcome=AuditEvent.Outcome.SUCCESS,
            created_at__gte=first,
            created_at__lt=end,
        )
        .values("booking__slot__service_line", week=TruncWeek("created_at", tzinfo=SERVICE_TIMEZONE))
        .annotate(count=Count("pk"))
        .order_by()
    ):
        moved[row["booking__slot__service_line"], _week_of(row["week"])] += row["count"]

    year_earlier_shown = any(week - YEAR in {when for _line, when in made} for week in weeks)
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


# --- 3. and 4. Languages, interpretation, who books --------------------------------------------------------------


def _who_and_what(*, query: InsightsQuery, languages: list[tuple[str, object]]) -> dict[str, Table]:
    """Bookings made in the period (confirmed then, cancelled later or not): by service language, by interpreter
    language, by the kind of the booking organisation and by channel. Small counts are hidden (`_small_cell`)."""
    start = _local_midnight(query.period_start)
    end = _local_midnight(query.period_end + dt.timedelta(days=1))
    made = Booking.objects.filter(_booking_filters(query), confirmed_at__gte=start, confirmed_at__lt=end)
    period = _("%(start)s–%(end)s") % {
        "start": formats.date_format(query.period_start, "j.n.Y"),
        "end": formats.date_format(query.period_end, "j.n.Y"),
    }
    counts = made.aggregate(
        **{f"language_{code}": Count("pk", filter=Q(slot__language=code)) for code, _name in languages},
        **{f"kind_{kind}": Count("pk", filter=Q(organisation__kind=kind)) for kind in Organisation.Kind.values},
        **{f"channel_{channel}": Count("pk", filter=Q(channel=channel)) for channel in Booking.Channel.values},
    )
    interpreters = list(
        made.filter(interpreter_needed=True)
        .values("interpreter_language")
        .annotate(count=Count("pk"))
        .order_by("-count", "interpreter_language")
    )
    bookings = Column("bookings", _("Bookings"))
    return {
        "languages": Table(
            slug="languages",
            title=_("Bookings by service language"),
            description=_("Bookings made in the period %(period)s, by the language of the call.") % {"period": period},
            columns=[bookings],
            rows=[
                Row(key=code, label=capfirst(name), cells=[_small_cell(counts[f"language_{code}"])])
                for code, name in languages
            ],
            corner=_("Service language"),
        ),
        "interpreters": Table(
            slug="interpreters",
            title=_("Interpreter needs by language"),
            description=_("Bookings made in the period %(period)s that need an interpreter, by interpreter language.")
            % {"period": period},
            columns=[bookings],
            rows=[
                Row(
                    key=row["interpreter_language"],
                    label=capfirst(language_name(row["interpreter_language"])),
                    cells=[_small_cell(row["count"])],
                )
                for row in interpreters
            ],
            corner=_("Interpreter language"),
        ),
        "organisation_kinds": Table(
            slug="organisation-kinds",
            title=_("Partner bookings by kind of organisation"),
            description=_("Bookings made by partners in the period %(period)s, by the kind of their organisation.")
            % {"period": period},
            columns=[bookings],
            rows=[
                Row(key=kind, label=str(label), cells=[_small_cell(counts[f"kind_{kind}"])])
                for kind, label in Organisation.Kind.choices
            ],
            corner=_("Kind of organisation"),
        ),
        "channels": Table(
            slug="channels",
            title=_("Bookings by channel"),
            description=_("Bookings made in the period %(period)s, by where they were made.") % {"period": period},
            columns=[bookings],
            rows=[
                Row(key=channel, label=str(label), cells=[_small_cell(counts[f"channel_{channel}"])])
                for channel, label in Booking.Channel.choices
            ],
            corner=pgettext("where a booking was made", "Channel"),
        ),
    }
