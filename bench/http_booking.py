"""A whole booking as the browser makes it (hold, check page, confirm) at saturation, beside the app's floor and a bare
Django floor, in turns, over rounds in which the bookings accumulate.

Run: .venv/bin/python bench/http_booking.py [--users 16] [--workers 3] [--rounds 4] [--seconds 12] [--bookings 500]

Two gunicorns on free loopback ports, both with production's settings (bench/settings.py): the app, and the bare
floor (bench/settings_bare.py: Django's session, CSRF and authentication middleware only). Each round runs, back to
back with N users and no think time: the app's floor, the bare floor, then whole bookings (BookingUser in
bench/locustfile.py), each booking with a prepared session of its own (the matter chosen, the contact details typed).
The cost of a request is the CPU the server side spent on it: gunicorn's processes and the bench database's
PostgreSQL backends (the load generator and other processes on the machine are left out). docs/benchmarks.md §7.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    ORGANISATION,
    MachineMeter,
    Server,
    bench_backends,
    cpu_seconds,
    overbookings,
    percentile,
    print_targets,
    served,
    vacuum_analyze,
)
from bench.http_journey import locust, prepared_sessions  # noqa: E402

BOOKING_LINE = "Benchmark: whole bookings"
TARGET_FLOORS_PER_BOOKING = 5
TARGET_FLOOR_OVER_BARE = 1.5
TARGET_GROWTH = 1.15


def server_cpu(servers: list[Server]) -> float:
    """CPU seconds so far of the gunicorns (masters and workers) and of the bench database's backends."""
    pids = [pid for server in servers for pid in (server.process.pid, *server.workers())]
    return sum(cpu_seconds(pid) for pid in [*pids, *bench_backends()])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=12, help="each floor turn")
    parser.add_argument("--bookings", type=int, default=500, help="prepared bookings per round (the round's end)")
    args = parser.parse_args()
    with served(workers=args.workers, sign_in=False) as (workdir, start):
        from django.core.management import call_command

        from registry.models import Organisation

        began = time.perf_counter()
        call_command("load_demo", verbosity=0)
        organisation = Organisation.objects.get(business_id=ORGANISATION[0])
        floor = prepared_sessions(args.users, organisation=organisation, holds=False, born=dt.date(1941, 1, 1))
        (workdir / "floor.json").write_text(json.dumps(floor))
        vacuum_analyze()
        print(f"prepared in {time.perf_counter() - began:.0f} s", flush=True)
        # Connections kept for the whole run: a backend that closes mid-turn would take its CPU out of the sums.
        os.environ["DB_CONN_MAX_AGE"] = "3600"
        app, bare = start(), start("bench.settings_bare")
        return run(args, app=app, bare=bare, workdir=workdir, organisation=organisation)


def prepare_bookings(args: argparse.Namespace, *, round_: int, organisation: Any, workdir: Path) -> None:
    """The round's bookings' sessions, made just before its turn as the matter and contact steps leave them a moment
    before the hold: their idle timer touched less than a minute ago, as the steps before would have touched it (a
    session prepared minutes earlier would have its first request write the session, which a partner's would not)."""
    sessions = prepared_sessions(
        args.bookings,
        organisation=organisation,
        holds=True,
        drafts_only=True,
        born=dt.date(1921, 1, 1) + dt.timedelta(days=30 * round_),
        line_name=BOOKING_LINE,
    )
    (workdir / f"bookings-{round_}.json").write_text(json.dumps(sessions))


def run(args: argparse.Namespace, *, app: Server, bare: Server, workdir: Path, organisation: Any) -> int:
    from bookings.models import Booking

    rounds: list[dict[str, dict]] = []
    for round_ in range(args.rounds):
        turns = [
            ("floor", app, "FloorUser", "floor", "FLOOR", args.seconds),
            ("bare floor", bare, "FloorUser", "floor", "FLOOR", args.seconds),
            ("booking", app, "BookingUser", f"bookings-{round_}", "BOOKING", 300),
        ]
        measured = {}
        for phase, server, user_class, sessions, name, seconds in turns:
            if phase == "booking":
                prepare_bookings(args, round_=round_, organisation=organisation, workdir=workdir)
            meter = MachineMeter(pids=lambda: [app.process.pid, *app.workers(), bare.process.pid, *bare.workers()])
            before = server_cpu([app, bare])
            options = {"url": server.url, "users": args.users, "workdir": workdir, "spawn_rate": args.users}
            env = {"BENCH_SESSIONS": str(workdir / f"{sessions}.json")}
            result = locust(user_class, seconds=seconds, env=env, **options)
            spent = server_cpu([app, bare]) - before
            entry = result[name]
            span = (entry["last"] - entry["first"]) if entry["first"] else 0.0
            steps = {step: result[step]["ms"] for step in result if step.startswith("BOOKING: ")}
            measured[phase] = {
                "ok": len(entry["ms"]),
                "errors": entry["errors"] + sum(result[step]["errors"] for step in steps),
                "samples": entry["samples"] + [s for step in steps for s in result[step]["samples"]],
                "rate": len(entry["ms"]) / span if span else 0.0,
                "cpu_ms": spent / max(len(entry["ms"]), 1) * 1000,
                "p95": {step: percentile(ms, 95) for step, ms in steps.items()},
                "others": max(meter.read()["others"], 0.0),
            }
        rounds.append(measured)
        booked = Booking.objects.filter(status=Booking.Status.CONFIRMED, slot__service_line__name_en=BOOKING_LINE)
        measured["booking"]["total"] = booked.count()

    excess = overbookings(service_line__name_en=BOOKING_LINE)
    print("\n  round  floor ms CPU  bare floor  booking ms CPU  = floors  floor/bare  bookings/s  confirmed so far")
    for number, r in enumerate(rounds, start=1):
        floor, bare_floor, booking = r["floor"], r["bare floor"], r["booking"]
        print(
            f"  {number:>5} {floor['cpu_ms']:>13.2f} {bare_floor['cpu_ms']:>11.2f} {booking['cpu_ms']:>15.2f}"
            f" {booking['cpu_ms'] / floor['cpu_ms']:>9.2f} {floor['cpu_ms'] / bare_floor['cpu_ms']:>11.2f}"
            f" {booking['rate']:>11.1f} {booking['total']:>17}"
        )
    print("  (ms CPU: the server side's CPU per request, or per whole booking of three requests)")
    print("\n  p95 ms of each step of the booking, per round")
    for step in sorted(rounds[0]["booking"]["p95"]):
        print(f"    {step:<22} " + ", ".join(f"{r['booking']['p95'].get(step, 0):.1f}" for r in rounds))
    print("\n  requests/s of the floors, per round")
    for phase in ("floor", "bare floor"):
        print(f"    {phase:<22} " + ", ".join(f"{r[phase]['rate']:.1f}" for r in rounds))
    print(
        "  other processes' CPU seconds during each round: "
        + ", ".join(f"{sum(r[p]['others'] for p in r):.1f}" for r in rounds)
    )
    errors = sum(r[p]["errors"] for r in rounds for p in r)
    for r in rounds:
        for phase in r:
            for sample in r[phase]["samples"]:
                print(f"  error in {phase}: {sample}")
    answered = sum(r["booking"]["ok"] for r in rounds)
    first, last = rounds[0], rounds[-1]
    per_floor = max(r["booking"]["cpu_ms"] / r["floor"]["cpu_ms"] for r in rounds)
    over_bare = max(r["floor"]["cpu_ms"] / r["bare floor"]["cpu_ms"] for r in rounds)
    growth = last["booking"]["cpu_ms"] / first["booking"]["cpu_ms"]
    print(f"\n  growth: last round's booking CPU / first's = {growth:.2f}")
    return print_targets(
        [
            (
                f"a whole booking ≤ {TARGET_FLOORS_PER_BOOKING} floors of CPU (worst round {per_floor:.2f})",
                per_floor <= TARGET_FLOORS_PER_BOOKING,
            ),
            (
                f"app's floor ≤ {TARGET_FLOOR_OVER_BARE} × the bare floor (worst round {over_bare:.2f})",
                over_bare <= TARGET_FLOOR_OVER_BARE,
            ),
            (f"last round's booking ≤ {TARGET_GROWTH} × the first's ({growth:.2f})", growth <= TARGET_GROWTH),
            ("0 overbookings", excess == 0),
            (
                f"every answered booking confirmed once ({answered} answered, {last['booking']['total']} confirmed)",
                answered == last["booking"]["total"],
            ),
            ("no request failed", errors == 0),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
