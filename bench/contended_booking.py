"""Contended booking: many clients, each on its own connection, hold and confirm into a few slots of capacity 3 at once.

Run: .venv/bin/python bench/contended_booking.py [--rounds N] [--clients N] [--slots N] [--short-hold-ms MS]

Each round, all clients are released together and each calls `booking_hold` and `booking_confirm` as its own
partner for its own customer on a random slot of the round; in every second round the holds last --short-hold-ms, so
that many expire while their confirm waits for the slot's lock. Afterwards: overbookings must be 0. What it measures
and the recorded run: docs/benchmarks.md §1.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import random
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    ORGANISATION,
    MachineMeter,
    bench_database,
    make_customers,
    make_partners,
    make_slots,
    overbookings,
    percentiles,
    print_rows,
    print_targets,
    temporary_identity_codes,
)

CAPACITY = 3
ROUND_TIMEOUT_S = 60


@dataclass
class Client:
    partner: object
    attempts: int = 0
    full: int = 0
    errors: list[str] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    confirm_ms: list[float] = field(default_factory=list)
    picks: list[tuple[int, int]] = field(default_factory=list)  # (round, slot id) of each attempt
    booked_rounds: list[int] = field(default_factory=list)
    # Short-hold rounds: confirms that read the clock after their hold had expired, booked or refused.
    expired_booked: int = 0
    expired_refused: int = 0


def available_clients(wanted: int, *, spare: int) -> int:
    """How many client connections fit beside the ones other sessions hold open, leaving `spare` connections free
    for everyone else (this script's own connection is closed while the clients run)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int,"
            " (SELECT count(*) - 1 FROM pg_stat_activity WHERE backend_type = 'client backend')"
        )
        most, reserved, others = cursor.fetchone()
    fit = most - reserved - others - spare
    print(f"max_connections={most}, reserved={reserved}, other clients={others}, spare={spare}: {fit} clients fit")
    if fit < wanted:
        print(f"*** only {fit} of the {wanted} requested clients fit in max_connections: using {fit} ***")
    return min(wanted, fit)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--clients", type=int, default=50, help="client threads, one connection each")
    parser.add_argument("--slots", type=int, default=5, help=f"slots a round, capacity {CAPACITY} each")
    parser.add_argument("--spare-connections", type=int, default=30, help="of max_connections, left to others")
    parser.add_argument("--max-seconds", type=float, default=240, help="stop after the round in progress")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--short-hold-ms", type=float, default=300, help="holds in every second round (0: never)")
    args = parser.parse_args()
    with bench_database():
        return run(args)


def run(args: argparse.Namespace) -> int:
    from django.conf import settings
    from django.db import connection, connections
    from django.test import override_settings

    from bookings.models import ServiceLine
    from bookings.services import ContactDetails, SlotFullError, booking_confirm, booking_hold
    from kelabooking import clock
    from registry.models import Organisation
    from tests.acting import acting_for

    count = available_clients(args.clients, spare=args.spare_connections)
    if count < 1:
        return 1
    line = ServiceLine.objects.create(name_fi="Asia", name_sv="Ärende", name_en="Matter")
    organisation = Organisation.objects.create(business_id=ORGANISATION[0], name=ORGANISATION[1])
    clients = [Client(p) for p in make_partners(temporary_identity_codes(count, first_birthday=dt.date(1935, 1, 1)))]
    customer_codes = temporary_identity_codes(count * args.rounds, first_birthday=dt.date(1940, 1, 1))
    # Every round's slots and customers are made before the clients connect: while they run, this script holds no
    # connection, so all of max_connections is theirs.
    first_start = clock.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    rounds = []
    for number in range(args.rounds):
        base = first_start + dt.timedelta(minutes=45 * args.slots * number)
        starts = [base + dt.timedelta(minutes=45 * i) for i in range(args.slots)]
        customers = make_customers(customer_codes[number * count : (number + 1) * count], organisation=organisation)
        rounds.append((make_slots(line, starts, capacity=CAPACITY), customers))
    connection.close()

    barriers = [threading.Barrier(count + 1, timeout=ROUND_TIMEOUT_S) for _ in range(2)]  # start, end
    now: dict[str, object] = {"stop": False, "round": 0}
    contact = ContactDetails(phone="+358401234567")

    def attempt(index: int, mine: Client, rng: random.Random) -> None:
        slot_ids, customers = rounds[now["round"]]
        slot_id = rng.choice(slot_ids)
        mine.attempts += 1
        mine.picks.append((now["round"], slot_id))
        acting = acting_for(mine.partner, organisation=organisation, customer=customers[index], request_id="bench")
        began, hold = time.perf_counter(), None
        try:
            hold = booking_hold(acting=acting, slot_id=slot_id)
            confirm_began = time.perf_counter()
            booking = booking_confirm(acting=acting, hold_id=hold.pk, contact=contact, idempotency_key=uuid.uuid4())
            mine.confirm_ms.append((time.perf_counter() - confirm_began) * 1000)
            mine.booked_rounds.append(now["round"])
            mine.expired_booked += booking.confirmed_at >= hold.hold_expires_at
        except SlotFullError:
            mine.full += 1
            mine.expired_refused += hold is not None  # refused at the confirm: only an expired hold can be
        except Exception as error:  # counted and shown: any other error is a finding
            mine.errors.append(f"{type(error).__name__}: {error}")
        mine.total_ms.append((time.perf_counter() - began) * 1000)

    def client(index: int) -> None:
        rng = random.Random(args.seed * 1000 + index)
        try:
            while True:
                barriers[0].wait()
                if now["stop"]:
                    return
                attempt(index, clients[index], rng)
                barriers[1].wait()
        except threading.BrokenBarrierError:
            return
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    short: set[int] = set()
    rounds_run, wall_s, began, meter = 0, 0.0, time.perf_counter(), MachineMeter()
    try:
        for number in range(args.rounds):
            if time.perf_counter() - began > args.max_seconds:
                print(f"*** stopped after {number} rounds: --max-seconds {args.max_seconds:.0f} reached ***")
                break
            now["round"] = number
            if args.short_hold_ms and number % 2 == 1:
                short.add(number)
            minutes = args.short_hold_ms / 60_000 if number in short else settings.BOOKING_HOLD_MINUTES
            round_began = time.perf_counter()
            # Set while every client waits at the barrier, so the whole round sees one hold length.
            with override_settings(BOOKING_HOLD_MINUTES=minutes):
                barriers[0].wait()
                barriers[1].wait()
            wall_s += time.perf_counter() - round_began
            rounds_run = number + 1
        load = meter.describe()  # before the clients close their connections
    finally:
        now["stop"] = True
        with contextlib.suppress(threading.BrokenBarrierError):
            barriers[0].wait()
        for thread in threads:
            thread.join(timeout=30)

    excess = overbookings(service_line=line)
    attempts = sum(c.attempts for c in clients)
    successes = sum(len(c.booked_rounds) for c in clients)
    errors = [error for c in clients for error in c.errors]
    # The most that can succeed with 10-minute holds: a slot that fewer than `capacity` clients happened to pick
    # cannot fill up. (With short holds a slot can be held again after a hold expired, so no such bound is exact.)
    pickers = Counter(pick for c in clients for pick in c.picks if pick[0] not in short)
    possible = sum(min(n, CAPACITY) for n in pickers.values())
    long_successes = sum(1 for c in clients for n in c.booked_rounds if n not in short)
    expired_booked, expired_refused = sum(c.expired_booked for c in clients), sum(c.expired_refused for c in clients)
    places = args.slots * CAPACITY
    print_rows(
        "contended booking",
        [
            (
                "rounds run",
                f"{rounds_run} (requested {args.rounds}); {len(short)} with {args.short_hold_ms:.0f} ms holds",
            ),
            ("clients (own connection each)", count),
            ("slots per round x capacity", f"{args.slots} x {CAPACITY}"),
            ("attempts", attempts),
            (
                "successes, 10-minute holds",
                f"{long_successes} of {places * (rounds_run - len(short))} places ({possible} possible with the picks)",
            ),
            (
                "successes, short holds",
                f"{successes - long_successes} of {places * len(short)} places; confirms after their hold had"
                f" expired: {expired_booked} booked (room left), {expired_refused} refused (slot full)",
            ),
            ("SlotFullError (hold or confirm)", sum(c.full for c in clients)),
            ("other errors", len(errors)),
            ("overbookings", excess),
            ("wall time in rounds", f"{wall_s:.1f} s"),
            ("during the rounds", load),
            ("throughput attempts/s", f"{attempts / wall_s:.1f}" if wall_s else "-"),
            ("throughput confirmed/s", f"{successes / wall_s:.1f}" if wall_s else "-"),
            ("booking_confirm p50/p95/p99 ms", percentiles([ms for c in clients for ms in c.confirm_ms])),
            ("hold+confirm (all attempts) p50/p95/p99 ms", percentiles([ms for c in clients for ms in c.total_ms])),
            ("every possible place filled (10-minute holds)", long_successes == possible),
        ],
    )
    for error in sorted(set(errors))[:10]:
        print(f"  error: {error}")
    targets = [("0 overbookings", excess == 0), ("no error other than SlotFullError", not errors)]
    if short:
        targets.append(("short holds expired while their confirm waited (≥ 1)", expired_booked + expired_refused > 0))
    return print_targets(targets)


if __name__ == "__main__":
    sys.exit(main())
