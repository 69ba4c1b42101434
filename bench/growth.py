"""Growth: the time picker and the customer overview with 1 000 bookings and with 1 000 000, same probe customer.

Run: .venv/bin/python bench/growth.py [--requests N] [--warmup N]

One database, two stages (the large one is the small one plus the other customers' history):
- both stages: one service line (Finnish), 50 000 slots (46 992 past with capacity 25, 16 a day over 2 937 days;
  3 008 from today on with capacity 3 and no bookings), one partner, one organisation, and the probe customer with
  1 000 past bookings (every 46th past slot; 800 confirmed, 200 cancelled).
- small: only those 1 000 bookings.
- large: plus 999 000 past bookings (79 % confirmed, 21 % cancelled) of 100 000 other customers (9-10 each), spread
  evenly over the past slots: 1 000 000 bookings in all.
The probe customer's pages are measured through Django's test Client against the real views: the time picker
(`bookings:time`, GET after posting the matter form) and the overview (`bookings:overview`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import bench_database, percentile  # noqa: E402

SLOTS_PER_DAY = 16
PAST_DAYS = 2937
TOTAL_SLOTS = 50_000
PAST_SLOTS = PAST_DAYS * SLOTS_PER_DAY  # 46 992
PROBE_BOOKINGS = 1_000
OTHER_CUSTOMERS = 100_000
OTHER_BOOKINGS = 999_000
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

CUSTOMERS_SQL = f"""
INSERT INTO bookings_customer (identity_code, first_name, last_name, phone, email, non_disclosure, source,
                               created_at, updated_at)
SELECT 'G' || lpad(i::text, 10, '0'), 'Bench', 'Customer ' || i, '+358401234567', '', false, 'kela_register',
       now(), now()
FROM generate_series(0, {OTHER_CUSTOMERS - 1}) AS i
"""  # noqa: S608

CUSTOMER_MAP_SQL = """
CREATE TEMP TABLE customer_map AS
SELECT (row_number() OVER (ORDER BY id) - 1)::int AS k, id FROM bookings_customer WHERE identity_code LIKE 'G%%'
"""

# A past booking: confirmed a week before its time, or cancelled two days before it.
BOOKINGS_SQL = """
INSERT INTO bookings_booking (reference, slot_id, customer_id, status, hold_expires_at, channel, organisation_id,
    booked_by_id, interpreter_needed, interpreter_language, contact_phone, contact_email, description,
    idempotency_key, created_at, confirmed_at, cancelled_at, cancelled_by_id, cancellation_reason, reminded_at)
SELECT %(prefix)s || lpad(to_hex(g.i), 7, '0'), sm.id, {customer}, CASE WHEN {cancelled} THEN 'cancelled'
       ELSE 'confirmed' END, NULL, 'partner', %(organisation)s, %(partner)s, false, '', '+358401234567', '', '',
       NULL, sm.starts_at - interval '7 days', sm.starts_at - interval '7 days',
       CASE WHEN {cancelled} THEN sm.starts_at - interval '2 days' END,
       CASE WHEN {cancelled} THEN %(partner)s END, '', NULL
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

# The queries behind the two pages, for EXPLAIN ANALYZE when a target is missed.
EXPLAIN_SQL = {
    "free_slots (time picker, 8 weeks)": """
        SELECT s.id, COUNT(b.id) FILTER (WHERE b.status = 'confirmed'
               OR (b.status = 'held' AND b.hold_expires_at > now())) AS taken
        FROM bookings_slot s LEFT JOIN bookings_booking b ON b.slot_id = s.id
        WHERE s.service_line_id = %(line)s AND s.language = 'fi'
          AND s.starts_at >= now() + interval '2 hours' AND s.starts_at < now() + interval '8 weeks'
        GROUP BY s.id HAVING COUNT(b.id) FILTER (WHERE b.status = 'confirmed'
               OR (b.status = 'held' AND b.hold_expires_at > now())) < s.capacity
        ORDER BY s.starts_at""",
    "customer_bookings (overview)": """
        SELECT b.*, s.*, l.*, o.* FROM bookings_booking b
        JOIN bookings_slot s ON s.id = b.slot_id JOIN bookings_serviceline l ON l.id = s.service_line_id
        LEFT JOIN registry_organisation o ON o.id = b.organisation_id
        WHERE b.customer_id = %(probe)s AND NOT (b.status = 'held') ORDER BY s.starts_at DESC""",
    "partner_hold (time picker)": """
        SELECT * FROM bookings_booking b WHERE b.booked_by_id = %(partner)s AND b.customer_id = %(probe)s
          AND b.status = 'held' LIMIT 1""",
}


def timed_sql(label: str, statement: str, params: dict | None = None) -> None:
    from django.db import connection

    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.rowcount
    print(f"  {label}: {rows} rows in {time.perf_counter() - began:.1f} s", flush=True)


def analyze() -> None:
    # VACUUM too: otherwise autovacuum wakes up for the freshly inserted rows in the middle of the measurement.
    timed_sql("VACUUM ANALYZE", "VACUUM ANALYZE")


def measure(client, url: str, *, requests: int, warmup: int) -> dict[str, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(warmup):
        assert client.get(url).status_code == 200
    latencies, counts, statements = [], [], {}
    for _ in range(requests):
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            response = client.get(url)
            latencies.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, response.status_code
        counts.append(len(captured.captured_queries))
        statements.setdefault(counts[-1], [q["sql"][:110] for q in captured.captured_queries])
    return {
        "queries": max(counts),
        "queries_min": min(counts),
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "bytes": len(response.content),
        "statements": statements,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE even when the targets are met")
    args = parser.parse_args()
    with bench_database():
        return run(args)


def run(args: argparse.Namespace) -> int:
    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse
    from django.utils import translation

    from bookings.models import Booking, Customer, ServiceLine, Slot
    from kelabooking import clock
    from partners import context
    from partners.models import User
    from registry.models import Organisation

    setup_test_environment()  # lets the test Client's "testserver" host through ALLOWED_HOSTS

    line = ServiceLine.objects.create(name_fi="Asumisen tuet", name_sv="Bostadsstöd", name_en="Housing benefits")
    organisation = Organisation.objects.create(business_id="0201256-6", name="Helsingin kaupunki")
    partner = User.objects.create(username="bench-partner", identity_code="BENCHPARTNR", password=make_password(None))
    probe = Customer.objects.create(
        identity_code="241170-944V", first_name="Asta", last_name="Asiakas", phone="+358401112222"
    )
    params = {
        "line": line.pk,
        "organisation": organisation.pk,
        "partner": partner.pk,
        "probe": probe.pk,
    }

    print("loading the small dataset", flush=True)
    loading_began = time.perf_counter()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
        timed_sql("slots", SLOTS_SQL, params)
        timed_sql("slot map", SLOT_MAP_SQL)
        timed_sql("probe bookings", PROBE_BOOKINGS_SQL, params | {"prefix": "P", "count": PROBE_BOOKINGS})
    analyze()

    client = Client()
    client.force_login(partner)
    session = client.session
    session[context.SESSION_KEY] = {
        "organisation_business_id": organisation.business_id,
        "organisation_name": organisation.name,
        "terms_accepted_at": clock.now().isoformat(),
        "customer_id": probe.pk,  # the customer is locked, as context.lock_customer leaves it
    }
    session.save()
    with translation.override("en"):
        matter_url, time_url, overview_url = (
            reverse("bookings:matter"),
            reverse("bookings:time"),
            reverse("bookings:overview"),
        )
    response = client.post(
        matter_url, {"service_line": line.pk, "language": "fi", "interpreter_needed": "no", "interpreter_language": ""}
    )
    assert response.status_code == 302, response.status_code
    assert response["Location"] == time_url, response["Location"]

    results: dict[str, dict[str, dict[str, float]]] = {}

    def measure_both(stage: str) -> None:
        bookings = Booking.objects.count()
        print(f"measuring {stage}: {Slot.objects.count()} slots, {bookings} bookings", flush=True)
        results[stage] = {
            "time picker": measure(client, time_url, requests=args.requests, warmup=args.warmup),
            "overview": measure(client, overview_url, requests=args.requests, warmup=args.warmup),
        }
        results[stage]["bookings"] = bookings

    measure_both("small")

    print("loading the large dataset", flush=True)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
            cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
            cursor.execute("SET LOCAL work_mem = '64MB'")
        timed_sql("other customers", CUSTOMERS_SQL)
        timed_sql("customer map", CUSTOMER_MAP_SQL)
        timed_sql("other bookings", OTHER_BOOKINGS_SQL, params | {"prefix": "H", "count": OTHER_BOOKINGS})
    analyze()
    print(f"  loading took {time.perf_counter() - loading_began:.1f} s in all", flush=True)
    measure_both("large")
    for stage in ("small", "large"):
        for page in ("time picker", "overview"):
            if len(results[stage][page]["statements"]) > 1:  # the count varied: show each shape once
                for n, sqls in sorted(results[stage][page]["statements"].items()):
                    print(f"  {stage} {page}: {n} queries", *sqls, sep="\n    ")

    print()
    print(f"growth ({args.requests} requests each after {args.warmup} warm-up, one client, DEBUG=1)")
    header = f"  {'page':<12} {'bookings':>9} {'queries':>7} {'p50 ms':>8} {'p95 ms':>8} {'KiB':>6}"
    print(header)
    missed = []
    for page in ("time picker", "overview"):
        for stage in ("small", "large"):
            r = results[stage][page]
            queries = f"{r['queries']}" if r["queries"] == r["queries_min"] else f"{r['queries_min']}-{r['queries']}"
            print(
                f"  {page:<12} {results[stage]['bookings']:>9} {queries:>7} {r['p50']:>8.1f} {r['p95']:>8.1f}"
                f" {r['bytes'] / 1024:>6.0f}"
            )
        small, large = results["small"][page], results["large"][page]
        ratio = large["p95"] / small["p95"]
        queries_ok = max(small["queries"], large["queries"]) <= QUERY_TARGET
        ratio_ok = ratio <= RATIO_TARGET
        print(
            f"  {page:<12} p95 large/small = {ratio:.2f} (target <= {RATIO_TARGET}): {'MET' if ratio_ok else 'MISSED'};"
            f" queries <= {QUERY_TARGET}: {'MET' if queries_ok else 'MISSED'}"
        )
        if not (queries_ok and ratio_ok):
            missed.append(page)

    if missed or args.explain:
        print()
        print("EXPLAIN ANALYZE of the pages' main queries on the large dataset:")
        with connection.cursor() as cursor:
            for label, statement in EXPLAIN_SQL.items():
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                print(f"-- {label}")
                for (line_,) in cursor.fetchall():
                    print(f"   {line_}")
        if "time picker" in missed or args.explain:
            explain_candidate_fixes(params)
    return 1 if missed else 0


# The time picker's free_slots with a correlated count per slot instead of LEFT JOIN + GROUP BY: the planner can no
# longer pick a hash join over every booking; each slot costs one probe of booking_slot_status_idx.
FREE_SLOTS_SUBQUERY_SQL = """
    SELECT s.id, t.taken FROM bookings_slot s,
      LATERAL (SELECT COUNT(*) AS taken FROM bookings_booking b WHERE b.slot_id = s.id
               AND (b.status = 'confirmed' OR (b.status = 'held' AND b.hold_expires_at > now()))) t
    WHERE s.service_line_id = %(line)s AND s.language = 'fi'
      AND s.starts_at >= now() + interval '2 hours' AND s.starts_at < now() + interval '8 weeks'
      AND t.taken < s.capacity
    ORDER BY s.starts_at"""


def explain_candidate_fixes(params: dict) -> None:
    """Execution time of free_slots under each candidate fix (bench database only; the app is not changed)."""
    from django.db import connection, transaction

    def execution_ms(statement: str, *setup: str) -> str:
        with transaction.atomic(), connection.cursor() as cursor:
            for line_ in setup:
                cursor.execute(line_)
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params)
            plan = cursor.fetchone()[0]
            plan = plan[0] if isinstance(plan, list) else plan
            top = plan["Plan"]
            while top.get("Plans") and top["Node Type"] in ("Sort", "Limit"):
                top = top["Plans"][0]
            result = f"{plan['Execution Time']:.1f} ms ({top['Node Type']})"
            transaction.set_rollback(True)
        return result

    free_slots_sql = EXPLAIN_SQL["free_slots (time picker, 8 weeks)"]
    print()
    print("free_slots on the large dataset under candidate fixes (each rolled back):")
    print(f"  as the app runs it (LEFT JOIN + GROUP BY)            {execution_ms(free_slots_sql)}")
    print(
        "  same SQL, SET LOCAL enable_hashjoin = off (diagnostic)  "
        f"{execution_ms(free_slots_sql, 'SET LOCAL enable_hashjoin = off', 'SET LOCAL enable_mergejoin = off')}"
    )
    print(
        "  same SQL, SET LOCAL random_page_cost = 1.1 (SSD)        "
        f"{execution_ms(free_slots_sql, 'SET LOCAL random_page_cost = 1.1')}"
    )
    print(f"  correlated count per slot (query change)               {execution_ms(FREE_SLOTS_SUBQUERY_SQL)}")


if __name__ == "__main__":
    sys.exit(main())
