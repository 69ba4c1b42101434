"""Growth: the time picker and the customer overview with 1 000 bookings and with 1 000 000, same probe customer.

Run: .venv/bin/python bench/growth.py [--requests 120] [--turns 6] [--warmup 3] [--explain]

Two databases, loaded the same way (the large one adds 999 000 bookings of 5 000 other customers), take turns
answering the probe partner's requests through Django's test Client (the real views, the probe's session stored in
both under one key). What it loads and measures, and the recorded run: docs/benchmarks.md §4.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    BENCH_DB,
    ORGANISATION,
    MachineMeter,
    bench_database,
    make_customers,
    make_partners,
    percentile,
    print_targets,
    temporary_identity_codes,
)

SLOTS_PER_DAY = 16
PAST_DAYS = 2937
TOTAL_SLOTS = 50_000
PAST_SLOTS = PAST_DAYS * SLOTS_PER_DAY  # 46 992
PROBE_BOOKINGS = 1_000
OTHER_CUSTOMERS = 5_000
OTHER_BOOKINGS = 999_000
LARGE_DB = f"{BENCH_DB}_large"
QUERY_TARGET = 10
RATIO_TARGET = 1.5

# Slot n: day (n / 16) - 2937 relative to today, at 06:00 UTC + 30 min * (n % 16).
SLOTS_SQL = f"""
INSERT INTO bookings_slot (service_line_id, language, starts_at, ends_at, capacity, set_by_hand)
SELECT %(line)s, 'fi', t, t + interval '30 minutes', CASE WHEN n < {PAST_SLOTS} THEN 25 ELSE 3 END, false
FROM generate_series(0, {TOTAL_SLOTS - 1}) AS n,
     LATERAL (SELECT date_trunc('day', now()) + ((n / {SLOTS_PER_DAY}) - {PAST_DAYS}) * interval '1 day'
             + interval '6 hours' + (n %% {SLOTS_PER_DAY}) * interval '30 minutes' AS t) AS s
"""  # noqa: S608 (module constants only)

SLOT_MAP_SQL = f"""
CREATE TEMP TABLE slot_map AS
SELECT (row_number() OVER (ORDER BY starts_at) - 1)::int AS k, id, starts_at FROM bookings_slot
WHERE starts_at < date_trunc('day', now()) LIMIT {PAST_SLOTS}
"""  # noqa: S608

# The other customers, made by the helper, numbered for the bookings' spread.
CUSTOMER_MAP_SQL = """
CREATE TEMP TABLE customer_map AS
SELECT (ordinality - 1)::int AS k, id FROM unnest(%(ids)s::bigint[]) WITH ORDINALITY AS c(id)
"""

# A past booking: confirmed a week before its time, or cancelled two days before it.
BOOKINGS_SQL = """
INSERT INTO bookings_booking (reference, slot_id, customer_id, status, hold_expires_at, channel, organisation_id,
    booked_by_id, interpreter_needed, interpreter_language, contact_phone, contact_email, description,
    idempotency_key, created_at, confirmed_at, cancelled_at, cancelled_by_id, cancellation_reason, reminded_at,
    sequence)
SELECT %(prefix)s || lpad(to_hex(g.i), 7, '0'), sm.id, {customer}, CASE WHEN {cancelled} THEN 'cancelled'
       ELSE 'confirmed' END, NULL, 'partner', %(organisation)s, %(partner)s, false, '', '+358401234567', '', '',
       NULL, sm.starts_at - interval '7 days', sm.starts_at - interval '7 days',
       CASE WHEN {cancelled} THEN sm.starts_at - interval '2 days' END,
       CASE WHEN {cancelled} THEN %(partner)s END, '', NULL, 0
FROM generate_series(0, %(count)s - 1) AS g(i)
JOIN slot_map sm ON sm.k = {slot_k}
{join}
"""
PROBE_BOOKINGS_SQL = BOOKINGS_SQL.format(customer="%(probe)s", cancelled="g.i %% 5 = 0", slot_k="g.i * 46", join="")
OTHER_BOOKINGS_SQL = BOOKINGS_SQL.format(
    customer="cm.id",
    cancelled="g.i %% 100 < 21",
    slot_k=f"g.i %% {PAST_SLOTS}",
    join=f"JOIN customer_map cm ON cm.k = g.i %% {OTHER_CUSTOMERS}",
)


def timed_sql(label: str, statement: str, params: dict | None = None) -> None:
    from django.db import connection

    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        print(f"  {label}: {cursor.rowcount} rows in {time.perf_counter() - began:.1f} s", flush=True)


# Transaction control that Django (4.2 and later) also captures as statements: counted apart from the queries.
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


@dataclass
class Page:
    """One page's timed requests in one stage, gathered over the turns."""

    latencies: list[float] = field(default_factory=list)
    queries: set[int] = field(default_factory=set)  # without transaction control
    statements: set[int] = field(default_factory=set)  # with it
    shapes: dict[int, list[str]] = field(default_factory=dict)  # statement count -> the statements, once
    slowest: list[str] = field(default_factory=list)
    bytes: int = 0

    def measure(self, client, url: str, *, requests: int, warmup: int) -> None:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        for _ in range(warmup):
            assert client.get(url).status_code == 200
        for _ in range(requests):
            with CaptureQueriesContext(connection) as captured:
                began = time.perf_counter()
                response = client.get(url)
                self.latencies.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.status_code
            sqls = [query["sql"] for query in captured.captured_queries]
            self.queries.add(sum(not sql.lstrip().upper().startswith(TRANSACTION_CONTROL) for sql in sqls))
            self.statements.add(len(sqls))
            self.shapes.setdefault(len(sqls), [sql[:110] for sql in sqls])
            if self.latencies[-1] == max(self.latencies):
                self.slowest = sqls
            self.bytes = len(response.content)


def span(values: set[int]) -> str:
    return f"{min(values)}" if min(values) == max(values) else f"{min(values)}-{max(values)}"


def use(database: str) -> None:
    """Point Django's connection at one of the two databases (the next query connects)."""
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = database


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=120, help="timed requests a page and stage, in all turns")
    parser.add_argument("--turns", type=int, default=6, help="the stages take turns this many times")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests a page at each turn")
    parser.add_argument(
        "--explain", action="store_true", help="EXPLAIN ANALYZE the pages' SELECTs even when the targets are met"
    )
    args = parser.parse_args()
    with bench_database(extra=(LARGE_DB,)):
        return run(args)


def load_common() -> dict:
    """What both stages have: the line, the organisation, the partner, the probe customer and its 1 000 bookings,
    the 50 000 slots. Loaded the same way into each database, so the rows have the same ids in both."""
    from django.db import connection, transaction

    from bookings.models import ServiceLine
    from registry.models import Organisation

    line = ServiceLine.objects.create(name_fi="Asumisen tuet", name_sv="Bostadsstöd", name_en="Housing benefits")
    organisation = Organisation.objects.create(business_id=ORGANISATION[0], name=ORGANISATION[1])
    (partner,) = make_partners(temporary_identity_codes(1, first_birthday=dt.date(1961, 1, 1)), first_name="Helena")
    (probe,) = make_customers(
        temporary_identity_codes(1, first_birthday=dt.date(1970, 11, 24)),
        organisation=organisation,
        first_name="Asta",
        last_name="Asiakas",
        phone="+358401112222",
    )
    params = {"line": line.pk, "organisation": organisation.pk, "partner": partner.pk, "probe": probe.pk}
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
        timed_sql("slots", SLOTS_SQL, params)
        timed_sql("slot map", SLOT_MAP_SQL)  # a temporary table: the large stage's bookings use it too
        timed_sql("probe bookings", PROBE_BOOKINGS_SQL, params | {"prefix": "P", "count": PROBE_BOOKINGS})
    return {"line": line, "organisation": organisation, "partner": partner, "probe": probe, "params": params}


def load_others(common: dict) -> None:
    """The large stage's addition: 5 000 other customers and their 999 000 past bookings."""
    from django.db import connection, transaction

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
            cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
            cursor.execute("SET LOCAL work_mem = '64MB'")
        began = time.perf_counter()
        codes = temporary_identity_codes(OTHER_CUSTOMERS, first_birthday=dt.date(1950, 1, 1))
        others = make_customers(codes, organisation=common["organisation"])
        print(f"  other customers: {len(others)} through the helper in {time.perf_counter() - began:.1f} s")
        timed_sql("customer map", CUSTOMER_MAP_SQL, {"ids": [customer.pk for customer in others]})
        timed_sql("other bookings", OTHER_BOOKINGS_SQL, common["params"] | {"prefix": "H", "count": OTHER_BOOKINGS})


def store_session(key: str, common: dict) -> None:
    """The probe's partner session under `key`: the organisation chosen, the terms accepted, the probe customer
    locked and the matter chosen (Finnish, no interpreter), as those steps leave it."""
    from django.conf import settings
    from django.contrib.sessions.models import Session

    from kelabooking import clock
    from tests.acting import signed_in_session

    draft = {"service_line_id": common["line"].pk, "language": "fi", "interpreter_language": ""}
    steps = {"organisation": common["organisation"], "customer": common["probe"], "draft": draft}
    Session.objects.create(
        session_key=key,
        session_data=Session.objects.encode(signed_in_session(common["partner"], **steps)),
        expire_date=clock.now() + dt.timedelta(seconds=settings.SESSION_COOKIE_AGE),
    )


def run(args: argparse.Namespace) -> int:
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse
    from django.utils import translation
    from django.utils.crypto import get_random_string

    from bookings.models import Booking

    setup_test_environment()  # lets the test Client's "testserver" host through ALLOWED_HOSTS
    databases = {"small": BENCH_DB, "large": LARGE_DB}
    began = time.perf_counter()
    session_key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
    bookings, ids = {}, {}
    for stage, database in databases.items():
        use(database)
        if stage != "small":  # bench_database() migrated the first
            call_command("migrate", interactive=False, verbosity=0)
        print(f"loading the {stage} stage into {database}", flush=True)
        common = load_common()
        if stage == "large":
            load_others(common)
        timed_sql("VACUUM ANALYZE", "VACUUM ANALYZE")  # else autovacuum wakes up in the middle of the measurement
        store_session(session_key, common)
        bookings[stage] = Booking.objects.count()
        ids[stage] = [common[name].pk for name in ("line", "partner", "probe")]
    assert ids["small"] == ids["large"], ids
    print(f"  loading took {time.perf_counter() - began:.1f} s in all", flush=True)
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    with translation.override("en"):
        urls = {"time picker": reverse("bookings:time"), "overview": reverse("bookings:overview")}

    # The stages take turns, each turn in the other order, so that a change in the speed of this shared machine
    # falls on both alike.
    pages = {stage: {page: Page() for page in urls} for stage in databases}
    per_turn = -(-args.requests // args.turns)
    meter = MachineMeter()
    for turn in range(args.turns):
        for stage in list(databases)[:: 1 if turn % 2 == 0 else -1]:
            use(databases[stage])
            print(f"  turn {turn + 1}: {stage} ({bookings[stage]} bookings)", flush=True)
            for page, url in urls.items():
                pages[stage][page].measure(client, url, requests=per_turn, warmup=args.warmup)
    load = meter.describe()

    print(f"\ngrowth ({per_turn * args.turns} requests a page and stage in {args.turns} turns, {args.warmup} warm-up")
    print("  at each turn, one client, DEBUG=1); queries: SQL statements a request sent, least-most, without")
    print(f"  BEGIN/COMMIT (then with them); during the measurement: {load}")
    print(
        f"  {'page':<12} {'bookings':>9} {'queries':>7} {'+ BEGIN/COMMIT':>14} {'p50 ms':>8} {'p95 ms':>8} {'KiB':>6}"
    )
    missed = []
    for name in urls:
        for stage in databases:
            page = pages[stage][name]
            p50, p95 = percentile(page.latencies, 50), percentile(page.latencies, 95)
            print(
                f"  {name:<12} {bookings[stage]:>9} {span(page.queries):>7} {span(page.statements):>14}"
                f" {p50:>8.1f} {p95:>8.1f} {page.bytes / 1024:>6.0f}"
            )
            if len(page.shapes) > 1:  # the count varied: show each shape once
                for n, sqls in sorted(page.shapes.items()):
                    print(f"    {n} statements:", *sqls, sep="\n      ")
        small, large = pages["small"][name].latencies, pages["large"][name].latencies
        ratio = percentile(large, 95) / percentile(small, 95)
        queries = max(max(pages[stage][name].queries) for stage in databases)
        print(
            f"  {name:<12} p95 large/small = {ratio:.2f} (target <= {RATIO_TARGET});"
            f" p50 large/small = {percentile(large, 50) / percentile(small, 50):.2f}; queries {queries}"
        )
        if queries > QUERY_TARGET or ratio > RATIO_TARGET:
            missed.append(name)
    if missed or args.explain:
        use(LARGE_DB)
        explain({name: pages["large"][name].slowest for name in urls})
    target = f"≤ {QUERY_TARGET} queries and p95 with 1 M ≤ {RATIO_TARGET} × p95 with 1 000"
    return print_targets([(f"{name} {target}", name not in missed) for name in urls])


def explain(slowest: dict[str, list[str]]) -> None:
    """EXPLAIN ANALYZE of the SELECTs the slowest request of each page ran on the large dataset: the app's own
    statements as Django sent them (client-side binding: the parameters are in the text), not a copy of them."""
    from django.db import connection, transaction

    print("\nEXPLAIN (ANALYZE, BUFFERS) of the slowest request's SELECTs on the large dataset (each rolled back):")
    for page, statements in slowest.items():
        for statement in (s for s in statements if s.lstrip().upper().startswith("SELECT")):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement)
                plan = [row[0] for row in cursor.fetchall()]
                transaction.set_rollback(True)
            print(f"-- {page}: {statement[:160]}", *plan, sep="\n   ")


if __name__ == "__main__":
    sys.exit(main())
