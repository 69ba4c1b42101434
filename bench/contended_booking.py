"""Contended booking: many clients, each on its own connection, hold and confirm into a few slots of capacity 3 at once.

Run: .venv/bin/python bench/contended_booking.py [--rounds N] [--clients N] [--slots N] [--short-hold-ms MS]

Every round gets --slots fresh slots and fresh customers; all clients are released together by a barrier and each
calls `booking_hold` and then `booking_confirm` for its own partner and customer (an `ActingContext` as the views
build it) on a randomly chosen slot of the round. Every second round the holds last only --short-hold-ms
(BOOKING_HOLD_MINUTES overridden in this process), so that many of them expire while their confirm waits for the
slot's lock: the slot can then be held again by others, and a confirm of an expired hold must find room or be
refused. Afterwards a fresh query checks confirmed bookings per slot against capacity (overbookings = the sum of the
excess, must be 0). The clients leave --spare-connections of PostgreSQL's max_connections to everyone else.
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

from bench._common import MachineMeter, bench_database, percentile, print_targets  # noqa: E402

DEFAULT_SLOTS = 5
CAPACITY = 3
ROUND_TIMEOUT_S = 60
# --max-seconds stops after the round in progress (and says so), so a run stays bounded whatever the machine.
DEFAULT_ROUNDS = 100
DEFAULT_CLIENTS = 50
DEFAULT_MAX_SECONDS = 240
# Connections left to other users of this PostgreSQL (tests of other projects run beside the benchmarks).
DEFAULT_SPARE_CONNECTIONS = 30


@dataclass
class ClientStats:
    attempts: int = 0
    successes: int = 0
    full: int = 0
    other_errors: list[str] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    confirm_ms: list[float] = field(default_factory=list)
    picks: list[tuple[int, int]] = field(default_factory=list)  # (round, slot id) of each attempt
    booked_rounds: list[int] = field(default_factory=list)  # the round of each success
    # Short-hold rounds: confirms that read the clock after their hold had expired, booked or refused.
    expired_booked: int = 0
    expired_refused: int = 0


def available_clients(wanted: int, *, spare: int) -> tuple[int, str]:
    """How many client connections fit beside the ones other sessions hold open, leaving `spare` connections free
    for everyone else (this script's own connection is closed while the clients run)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW max_connections")
        max_connections = int(cursor.fetchone()[0])
        cursor.execute("SHOW superuser_reserved_connections")
        reserved = int(cursor.fetchone()[0])
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
        others = int(cursor.fetchone()[0]) - 1  # without this main connection
    fit = max_connections - reserved - others - spare
    note = (
        f"max_connections={max_connections}, superuser_reserved_connections={reserved}, other client connections"
        f" open={others}, left spare for others={spare}: {fit} clients fit"
    )
    return min(wanted, fit), note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS, help="client threads, one connection each")
    parser.add_argument("--slots", type=int, default=DEFAULT_SLOTS, help=f"slots a round, capacity {CAPACITY} each")
    parser.add_argument(
        "--spare-connections", type=int, default=DEFAULT_SPARE_CONNECTIONS, help="of max_connections, left to others"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, help="stop after the round in progress"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--short-hold-ms", type=float, default=300, help="how long a hold lasts in every second round (0: never short)"
    )
    args = parser.parse_args()

    with bench_database():
        return run(args)


def run(args: argparse.Namespace) -> int:
    from django.conf import settings
    from django.db import connection, connections
    from django.db.models import Count, Q
    from django.test import override_settings

    from bench._common import ORGANISATION, acting_for, make_customers, make_partner, temporary_identity_codes
    from bookings.models import Booking, Customer, ServiceLine, Slot
    from bookings.services import ContactDetails, SlotFullError, booking_confirm, booking_hold
    from kelabooking import clock
    from registry.models import Organisation

    slots_per_round = args.slots
    clients, note = available_clients(args.clients, spare=args.spare_connections)
    print(note)
    if clients < args.clients:
        print(f"*** only {clients} of the {args.clients} requested clients fit in max_connections: using {clients} ***")
    if clients < 1:
        print("no connection left for clients")
        return 1

    line = ServiceLine.objects.create(name_fi="Asia", name_sv="Ärende", name_en="Matter")
    organisation = Organisation.objects.create(business_id=ORGANISATION[0], name=ORGANISATION[1])
    partners = [make_partner(code) for code in temporary_identity_codes(clients, first_birthday=dt.date(1935, 1, 1))]
    customer_codes = temporary_identity_codes(clients * args.rounds, first_birthday=dt.date(1940, 1, 1))
    first_start = clock.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    contact = ContactDetails(phone="+358401234567")

    stats = [ClientStats() for _ in range(clients)]
    start_barrier = threading.Barrier(clients + 1, timeout=ROUND_TIMEOUT_S)
    end_barrier = threading.Barrier(clients + 1, timeout=ROUND_TIMEOUT_S)
    shared: dict[str, object] = {"stop": False, "slots": [], "customers": [], "round": 0}

    def client(index: int) -> None:
        rng = random.Random(args.seed * 1000 + index)
        partner, mine = partners[index], stats[index]
        try:
            while True:
                start_barrier.wait()
                if shared["stop"]:
                    return
                slot_id = rng.choice(shared["slots"])
                customer = shared["customers"][index]
                mine.attempts += 1
                mine.picks.append((shared["round"], slot_id))
                acting = acting_for(partner=partner, organisation=organisation, customer=customer)
                began = time.perf_counter()
                held = False
                try:
                    hold = booking_hold(acting=acting, slot_id=slot_id)
                    held = True
                    confirm_began = time.perf_counter()
                    booking = booking_confirm(
                        acting=acting, hold_id=hold.pk, contact=contact, idempotency_key=uuid.uuid4()
                    )
                    ended = time.perf_counter()
                    mine.confirm_ms.append((ended - confirm_began) * 1000)
                    mine.total_ms.append((ended - began) * 1000)
                    mine.successes += 1
                    mine.booked_rounds.append(shared["round"])
                    mine.expired_booked += booking.confirmed_at >= hold.hold_expires_at
                except SlotFullError:
                    mine.total_ms.append((time.perf_counter() - began) * 1000)
                    mine.full += 1
                    mine.expired_refused += held  # refused at the confirm: only an expired hold can be
                except Exception as error:  # counted and shown: any other error is a finding
                    mine.other_errors.append(f"{type(error).__name__}: {error}")
                end_barrier.wait()
        except threading.BrokenBarrierError:
            return
        finally:
            connections.close_all()

    # Every round's slots and customers are made before the clients connect: while they run, this script holds no
    # connection, so all of max_connections is theirs.
    round_slots: list[list[int]] = []
    round_customers: list[list[Customer]] = []
    for round_number in range(args.rounds):
        base = first_start + dt.timedelta(minutes=45 * slots_per_round * round_number)
        slots = Slot.objects.bulk_create(
            Slot(
                service_line=line,
                language="fi",
                starts_at=base + dt.timedelta(minutes=45 * i),
                ends_at=base + dt.timedelta(minutes=45 * (i + 1)),
                capacity=CAPACITY,
            )
            for i in range(slots_per_round)
        )
        round_slots.append([slot.pk for slot in slots])
        codes = customer_codes[round_number * clients : (round_number + 1) * clients]
        round_customers.append(make_customers(codes, organisation=organisation))
    connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()

    rounds_run = 0
    short_rounds = 0
    attempts_wall_s = 0.0
    run_started = time.perf_counter()
    meter = MachineMeter()
    load = ""
    try:
        for round_number in range(args.rounds):
            if time.perf_counter() - run_started > args.max_seconds:
                print(f"*** stopped after {rounds_run} rounds: --max-seconds {args.max_seconds:.0f} reached ***")
                break
            shared["slots"] = round_slots[round_number]
            shared["customers"] = round_customers[round_number]
            shared["round"] = round_number
            short = bool(args.short_hold_ms) and round_number % 2 == 1
            hold_minutes = args.short_hold_ms / 60_000 if short else settings.BOOKING_HOLD_MINUTES
            began = time.perf_counter()
            # Set while every client waits at the barrier, so the whole round sees one hold length.
            with override_settings(BOOKING_HOLD_MINUTES=hold_minutes):
                start_barrier.wait()
                end_barrier.wait()
            short_rounds += short
            attempts_wall_s += time.perf_counter() - began
            rounds_run += 1
        load = meter.describe()  # before the clients close their connections
    finally:
        shared["stop"] = True
        with contextlib.suppress(threading.BrokenBarrierError):
            start_barrier.wait()
        for thread in threads:
            thread.join(timeout=30)

    # A fresh connection, after every client has gone: confirmed bookings per slot against capacity.
    per_slot = Slot.objects.filter(service_line=line).annotate(
        confirmed=Count("bookings", filter=Q(bookings__status=Booking.Status.CONFIRMED))
    )
    overbookings = sum(max(0, slot.confirmed - slot.capacity) for slot in per_slot)
    connection.close()

    attempts = sum(s.attempts for s in stats)
    successes = sum(s.successes for s in stats)
    full = sum(s.full for s in stats)
    errors = [e for s in stats for e in s.other_errors]
    confirm_ms = [v for s in stats for v in s.confirm_ms]
    total_ms = [v for s in stats for v in s.total_ms]
    # The most that can succeed with 10-minute holds: a slot that fewer than `capacity` clients happened to pick
    # cannot fill up. (With short holds a slot can be held again after a hold expired, so no such bound is exact.)
    short = {n for n in range(rounds_run) if args.short_hold_ms and n % 2 == 1}
    pickers = Counter(pick for s in stats for pick in s.picks if pick[0] not in short)
    expected = sum(min(count, CAPACITY) for count in pickers.values())
    long_successes = sum(1 for s in stats for n in s.booked_rounds if n not in short)
    short_successes = successes - long_successes
    expired_booked = sum(s.expired_booked for s in stats)
    expired_refused = sum(s.expired_refused for s in stats)

    rows = [
        (
            "rounds run",
            f"{rounds_run} (requested {args.rounds}); {len(short)} of them with {args.short_hold_ms:.0f} ms holds",
        ),
        ("clients (own connection each)", f"{clients}"),
        ("slots per round x capacity", f"{slots_per_round} x {CAPACITY}"),
        ("attempts", f"{attempts}"),
        (
            "successes, 10-minute holds",
            f"{long_successes} of {slots_per_round * CAPACITY * (rounds_run - len(short))} places"
            f" ({expected} possible with the random picks)",
        ),
        (
            "successes, short holds",
            f"{short_successes} of {slots_per_round * CAPACITY * len(short)} places; confirms after their hold had"
            f" expired: {expired_booked} booked (room left), {expired_refused} refused (slot full)",
        ),
        ("SlotFullError (hold or confirm)", f"{full}"),
        ("other errors", f"{len(errors)}"),
        ("overbookings", f"{overbookings}"),
        ("wall time in rounds", f"{attempts_wall_s:.1f} s"),
        ("during the rounds", load),
        ("throughput attempts/s", f"{attempts / attempts_wall_s:.1f}" if attempts_wall_s else "-"),
        ("throughput confirmed/s", f"{successes / attempts_wall_s:.1f}" if attempts_wall_s else "-"),
        (
            "booking_confirm p50/p95/p99 ms",
            f"{percentile(confirm_ms, 50):.1f} / {percentile(confirm_ms, 95):.1f} / {percentile(confirm_ms, 99):.1f}",
        ),
        (
            "hold+confirm (all attempts) p50/p95/p99 ms",
            f"{percentile(total_ms, 50):.1f} / {percentile(total_ms, 95):.1f} / {percentile(total_ms, 99):.1f}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    print("contended booking")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    for error in sorted(set(errors))[:10]:
        print(f"  error: {error}")
    print(f"  every possible place filled (10-minute holds, information): {long_successes == expected}")
    targets = [("0 overbookings", overbookings == 0), ("no error other than SlotFullError", not errors)]
    if short:
        targets.append(("short holds expired while their confirm waited (≥ 1)", expired_booked + expired_refused > 0))
    return print_targets(targets)


if __name__ == "__main__":
    sys.exit(main())
