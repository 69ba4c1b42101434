"""Growth of the capacity and demand view: its page with 1 000 bookings and with 1 000 000, as an administrator.

Run: .venv/bin/python bench/insights.py [--requests 60] [--turns 6] [--warmup 2] [--explain]

The two databases are loaded as bench/growth.py loads them (its `load_common` and `load_others`: 50 000 slots of one
line over eight years, then 1 000 bookings, or 1 000 000 of 5 001 customers, confirmed a week before their time, a
fifth of them cancelled), so about 29 of the small stage's bookings and some 28 600 of the large one's were made in
the twelve weeks the page counts, and as many in the same weeks a year earlier. One superuser's signed-in session is
stored in both under one key; the stages take turns answering the page through Django's test Client. What it loads
and measures, and the recorded run: docs/benchmarks.md §5.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import BENCH_DB, MachineMeter, bench_database, percentile, print_targets  # noqa: E402
from bench.growth import LARGE_DB, Page, explain, load_common, load_others, span, timed_sql, use  # noqa: E402

QUERY_TARGET = 12
RATIO_TARGET = 2.0
P95_TARGET_MS = 300.0
ADMIN_USERNAME = "bench-capacity-admin"
# Unusable (the "!" prefix) and the same in both databases, so that the session's auth hash, made from it, is too.
UNUSABLE_PREFIX = "!"  # Django's unusable-password prefix: nobody signs in with it
ADMIN_PASSWORD = UNUSABLE_PREFIX + ADMIN_USERNAME


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60, help="timed requests a stage, in all turns")
    parser.add_argument("--turns", type=int, default=6, help="the stages take turns this many times")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests at each turn")
    parser.add_argument("--cold", type=int, default=12, help="timed requests a stage with the cache emptied first")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the page's SELECTs on the large data")
    args = parser.parse_args()
    with bench_database(extra=(LARGE_DB,)):
        return run(args)


def store_admin_session(key: str) -> None:
    """A superuser signed in to the admin (a break-glass password sign-in) under session `key`."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.models import Session

    from kelabooking import clock
    from partners.models import User

    user = User.objects.create(
        username=ADMIN_USERNAME, password=ADMIN_PASSWORD, is_staff=True, is_superuser=True, is_active=True
    )
    data = {
        SESSION_KEY: str(user.pk),
        BACKEND_SESSION_KEY: "partners.staff.passwords.BreakGlassPasswordBackend",
        HASH_SESSION_KEY: user.get_session_auth_hash(),
    }
    Session.objects.create(
        session_key=key,
        session_data=Session.objects.encode(data),
        expire_date=clock.now() + dt.timedelta(seconds=settings.SESSION_COOKIE_AGE),
    )


def run(args: argparse.Namespace) -> int:
    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import reset_queries
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse
    from django.utils.crypto import get_random_string

    from bookings.models import Booking

    setup_test_environment()  # lets the test Client's "testserver" host through ALLOWED_HOSTS
    databases = {"small": BENCH_DB, "large": LARGE_DB}
    began = time.perf_counter()
    session_key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
    bookings = {}
    for stage, database in databases.items():
        use(database)
        if stage != "small":  # bench_database() migrated the first
            call_command("migrate", interactive=False, verbosity=0)
        print(f"loading the {stage} stage into {database}", flush=True)
        common = load_common()
        if stage == "large":
            load_others(common)
        timed_sql("VACUUM ANALYZE", "VACUUM ANALYZE")
        store_admin_session(session_key)
        bookings[stage] = Booking.objects.count()
    print(f"  loading took {time.perf_counter() - began:.1f} s in all", flush=True)
    client = Client(HTTP_ACCEPT_LANGUAGE="fi")
    client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    url = reverse("admin:bookings_capacity_demand")

    pages = {stage: Page() for stage in databases}
    cold = {stage: Page() for stage in databases}
    per_turn = -(-args.requests // args.turns)
    cold_per_turn = -(-args.cold // args.turns)
    meter = MachineMeter()
    for turn in range(args.turns):
        for stage in list(databases)[:: 1 if turn % 2 == 0 else -1]:
            use(databases[stage])
            print(f"  turn {turn + 1}: {stage} ({bookings[stage]} bookings)", flush=True)
            # The finished days' counts are kept in the cache (bookings/insights.py): measured without them (each
            # request after emptying it: a first visit, or the morning after), then as pages usually are, with.
            for _ in range(cold_per_turn):
                cache.clear()
                reset_queries()  # DEBUG's log keeps 9 000 statements; once full, CaptureQueriesContext sees none
                cold[stage].measure(client, url, requests=1, warmup=0)
            cache.clear()  # the two databases share this process's cache
            reset_queries()
            pages[stage].measure(client, url, requests=per_turn, warmup=args.warmup)
    load = meter.describe()

    print(f"\ncapacity and demand ({per_turn * args.turns} requests a stage in {args.turns} turns, {args.warmup}")
    print("  warm-up at each turn, one client, DEBUG=1); queries: SQL statements a request sent, least-most, without")
    print(f"  BEGIN/COMMIT (then with them); during the measurement: {load}")
    print(
        f"  {'cache':<6} {'bookings':>9} {'queries':>7} {'+ BEGIN/COMMIT':>14} {'p50 ms':>8} {'p95 ms':>8} {'KiB':>6}"
    )
    for label, measured in (("kept", pages), ("empty", cold)):
        for stage in databases:
            page = measured[stage]
            print(
                f"  {label:<6} {bookings[stage]:>9} {span(page.queries):>7} {span(page.statements):>14}"
                f" {percentile(page.latencies, 50):>8.1f} {percentile(page.latencies, 95):>8.1f}"
                f" {page.bytes / 1024:>6.0f}"
            )
    cold_ratio = percentile(cold["large"].latencies, 95) / percentile(cold["small"].latencies, 95)
    print(f"  with the cache emptied before each request: p95 large/small = {cold_ratio:.2f} (information)")
    small, large = pages["small"].latencies, pages["large"].latencies
    ratio = percentile(large, 95) / percentile(small, 95)
    queries = max(max(measured[stage].queries) for measured in (pages, cold) for stage in databases)
    print(f"  p95 large/small = {ratio:.2f} (target <= {RATIO_TARGET}); p95 large {percentile(large, 95):.1f} ms")
    targets = [
        (f"≤ {QUERY_TARGET} queries", queries <= QUERY_TARGET),
        (f"p95 with 1 M ≤ {RATIO_TARGET} × p95 with 1 000", ratio <= RATIO_TARGET),
        (f"p95 with 1 M < {P95_TARGET_MS:.0f} ms", percentile(large, 95) < P95_TARGET_MS),
    ]
    if args.explain or not all(met for _label, met in targets):
        use(LARGE_DB)
        explain({"capacity and demand": pages["large"].slowest})
    return print_targets(targets)


if __name__ == "__main__":
    sys.exit(main())
