"""Contended booking: many clients, each on its own connection, hold and confirm into 10 slots of capacity 3 at once.

Run: .venv/bin/python bench/contended_booking.py [--rounds N] [--clients N]
Every round gets 10 fresh slots and fresh customers; all clients are released together by a barrier and each holds
then confirms a randomly chosen slot of the round. Afterwards a fresh query checks confirmed bookings per slot
against capacity (overbookings = the sum of the excess, must be 0).
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

from bench._common import bench_database, percentile  # noqa: E402

SLOTS_PER_ROUND = 10
CAPACITY = 3
ROUND_TIMEOUT_S = 60
# 100 rounds take about 3 minutes on 2 cores; --max-seconds stops after the round in progress (and says so), so a
# run stays bounded whatever the machine.
DEFAULT_ROUNDS = 100
DEFAULT_MAX_SECONDS = 300


@dataclass
class ClientStats:
    attempts: int = 0
    successes: int = 0
    full: int = 0
    other_errors: list[str] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    confirm_ms: list[float] = field(default_factory=list)
    picks: list[tuple[int, int]] = field(default_factory=list)  # (round, slot id) of each attempt


def available_clients(wanted: int) -> tuple[int, str]:
    """How many client connections fit beside the ones other sessions hold open.

    This script's own (main) connection is closed while the clients run, and a superuser may use the
    superuser_reserved_connections too (the bench connects as `postgres`).
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW max_connections")
        max_connections = int(cursor.fetchone()[0])
        cursor.execute("SHOW superuser_reserved_connections")
        reserved = int(cursor.fetchone()[0])
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        superuser = bool(cursor.fetchone()[0])
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
        others = int(cursor.fetchone()[0]) - 1  # without this main connection
    fit = max_connections - others - (0 if superuser else reserved)
    note = (
        f"max_connections={max_connections}, superuser_reserved_connections={reserved} "
        f"({'usable: superuser' if superuser else 'not usable'}), other client connections open={others}: "
        f"{fit} clients fit while the main connection is closed"
    )
    return min(wanted, fit), note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument(
        "--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, help="stop after the round in progress"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with bench_database():
        return run(args)


def run(args: argparse.Namespace) -> int:
    from django.contrib.auth.hashers import make_password
    from django.db import connection, connections
    from django.db.models import Count, Q

    from bookings.models import Booking, Customer, ServiceLine, Slot
    from bookings.services.booking import ContactDetails, SlotFullError, booking_confirm, booking_hold
    from kelabooking import clock
    from partners.models import User
    from registry.models import Organisation

    clients, note = available_clients(args.clients)
    print(note)
    if clients < args.clients:
        print(f"*** only {clients} of the {args.clients} requested clients fit in max_connections: using {clients} ***")
    if clients < 1:
        print("no connection left for clients")
        return 1

    line = ServiceLine.objects.create(name_fi="Asia", name_sv="Ärende", name_en="Matter")
    organisation = Organisation.objects.create(business_id="0201256-6", name="Bench ry")
    partners = User.objects.bulk_create(
        User(username=f"bench-partner-{i}", identity_code=f"BP{i:09d}", password=make_password(None))
        for i in range(clients)
    )
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
                began = time.perf_counter()
                try:
                    hold = booking_hold(slot_id=slot_id, customer=customer, partner=partner, organisation=organisation)
                    confirm_began = time.perf_counter()
                    booking_confirm(booking_id=hold.pk, partner=partner, contact=contact, idempotency_key=uuid.uuid4())
                    ended = time.perf_counter()
                    mine.confirm_ms.append((ended - confirm_began) * 1000)
                    mine.total_ms.append((ended - began) * 1000)
                    mine.successes += 1
                except SlotFullError:
                    mine.total_ms.append((time.perf_counter() - began) * 1000)
                    mine.full += 1
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
        base = first_start + dt.timedelta(minutes=45 * SLOTS_PER_ROUND * round_number)
        slots = Slot.objects.bulk_create(
            Slot(
                service_line=line,
                language="fi",
                starts_at=base + dt.timedelta(minutes=45 * i),
                ends_at=base + dt.timedelta(minutes=45 * (i + 1)),
                capacity=CAPACITY,
            )
            for i in range(SLOTS_PER_ROUND)
        )
        round_slots.append([slot.pk for slot in slots])
        round_customers.append(
            Customer.objects.bulk_create(
                Customer(identity_code=f"R{round_number:04d}C{i:05d}", first_name="B", last_name=f"{i}")
                for i in range(clients)
            )
        )
    connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()

    rounds_run = 0
    attempts_wall_s = 0.0
    run_started = time.perf_counter()
    try:
        for round_number in range(args.rounds):
            if time.perf_counter() - run_started > args.max_seconds:
                print(f"*** stopped after {rounds_run} rounds: --max-seconds {args.max_seconds:.0f} reached ***")
                break
            shared["slots"] = round_slots[round_number]
            shared["customers"] = round_customers[round_number]
            shared["round"] = round_number
            began = time.perf_counter()
            start_barrier.wait()
            end_barrier.wait()
            attempts_wall_s += time.perf_counter() - began
            rounds_run += 1
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
    # The most that can succeed: a slot that fewer than `capacity` clients happened to pick cannot fill up.
    pickers = Counter(pick for s in stats for pick in s.picks)
    expected = sum(min(count, CAPACITY) for count in pickers.values())
    full_possible = SLOTS_PER_ROUND * CAPACITY * rounds_run

    rows = [
        ("rounds run", f"{rounds_run} (requested {args.rounds})"),
        ("clients (own connection each)", f"{clients}"),
        ("slots per round x capacity", f"{SLOTS_PER_ROUND} x {CAPACITY}"),
        ("attempts", f"{attempts}"),
        (
            "successes",
            f"{successes} ({successes / max(rounds_run, 1):.2f}/round; {full_possible} if every slot fills,"
            f" {expected} possible with the random picks)",
        ),
        ("SlotFullError", f"{full}"),
        ("other errors", f"{len(errors)}"),
        ("overbookings", f"{overbookings}"),
        ("wall time in rounds", f"{attempts_wall_s:.1f} s"),
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
    print(f"  target every possible place filled: {'MET' if successes == expected else 'MISSED'}")
    verdict = overbookings == 0 and not errors
    print(f"  target 0 overbookings: {'MET' if overbookings == 0 else 'MISSED'}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
