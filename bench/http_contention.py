"""Overbooking through HTTP: over 100 partner sessions confirm at once on a few slots while their holds expire.

Run: .venv/bin/python bench/http_contention.py [--sessions 120] [--rounds 5] [--slots 4] [--capacity 3]
     [--hold-seconds 1.5] [--workers 3] [--threads 12]

gunicorn (production's settings, bench/settings.py, with --hold-seconds holds) with --workers x --threads; every
round's sessions take their holds through HTTP in waves (each wave once the one before has expired), read their
check pages, and then all post their confirms at the same moment. Afterwards: overbookings must be 0, and every
"booked" answer one confirmed booking. What it measures and the recorded run: docs/benchmarks.md §2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import sys
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    BENCH_DB,
    ORGANISATION,
    MachineMeter,
    cookie_headers,
    make_customers,
    make_partners,
    make_slots,
    overbookings,
    percentiles,
    print_targets,
    served,
    signed_in_sessions,
    temporary_identity_codes,
    vacuum_analyze,
)
from tests.drills import confirm_form, csrf_token  # noqa: E402

TIME_PATH, CHECK_PATH = "/en/book/time/", "/en/book/check/"
TAKEN_MEANWHILE = "This time was just taken."  # SlotFullError's message on the time page, in English
MIN_SESSIONS = 100
TIMEOUT_S = 60
WAVE_MARGIN_S = 0.1  # after a wave's last hold, the next wave waits this much longer than a hold lasts


@dataclass
class Attempt:
    """One partner session in a round."""

    cookies: dict[str, str]
    slot: int
    wave: int
    hold: int = 0
    expires: float = 0.0  # when its hold expires (time.time(), read from the database after its wave)
    form: dict[str, str] = field(default_factory=dict)
    sent: float = 0.0
    answered: float = 0.0
    outcome: str = ""  # booked, taken, or error
    detail: str = ""


@dataclass
class Round:
    slots: list[int]
    attempts: list[Attempt]
    waves: int
    burst_s: float = 0.0
    lock_waiters_max: int = 0


def prepare(*, sessions: int, rounds: int, slots: int, capacity: int) -> list[Round]:
    from bookings.models import ServiceLine
    from kelabooking import clock
    from registry.models import Organisation

    organisation = Organisation.objects.create(business_id=ORGANISATION[0], name=ORGANISATION[1])
    line = ServiceLine.objects.create(name_fi="Kilpailu", name_sv="Tävling", name_en="Contention")
    first_day = clock.localnow().replace(hour=9, minute=0, second=0, microsecond=0) + dt.timedelta(days=2)
    contact = {"phone": "+358401234567", "email": "", "description": "Benchmark"}
    draft = {"service_line_id": line.pk, "language": "fi", "interpreter_language": "", "contact": contact}
    per_wave = slots * capacity
    prepared = []
    for number in range(rounds):
        starts = [first_day + dt.timedelta(days=number, minutes=45 * i) for i in range(slots)]
        round_slots = make_slots(line, starts, capacity=capacity)
        born = dt.date(1930, 1, 1) + dt.timedelta(days=10 * number)  # 100 codes a day: 1 000 a round at most
        partners = make_partners(temporary_identity_codes(sessions, first_birthday=born))
        codes = temporary_identity_codes(sessions, first_birthday=born + dt.timedelta(days=18250))
        customers = make_customers(codes, organisation=organisation)
        cookies = signed_in_sessions(partners, customers, organisation=organisation, drafts=[draft] * sessions)
        # Session n: wave n // per_wave, and in each wave `capacity` sessions for each slot.
        attempts = [
            Attempt(cookies=cookie, slot=round_slots[(n % per_wave) // capacity], wave=n // per_wave)
            for n, cookie in enumerate(cookies)
        ]
        prepared.append(Round(round_slots, attempts, waves=-(-sessions // per_wave)))
    vacuum_analyze()
    return prepared


def lock_waiters(stop: threading.Event, into: Round) -> None:
    """How many of the bench database's backends wait for a lock, every 10 ms (PostgreSQL's statistics view)."""
    dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={BENCH_DB} connect_timeout=5"
    with psycopg.connect(dsn, autocommit=True) as connection:
        while not stop.wait(0.01):
            (waiting,) = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            into.lock_waiters_max = max(into.lock_waiters_max, waiting)


def request(port: int, path: str, headers: dict, fields: dict | None = None) -> tuple[int, str, str]:
    """A GET, or with `fields` a POST, on a connection of its own (gunicorn closes idle keep-alive connections after
    2 s, and the sessions wait longer than that between their steps); (status, Location, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        if fields is None:
            connection.request("GET", path, headers=headers)
        else:
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            connection.request("POST", path, body=urllib.parse.urlencode(fields), headers=headers | form)
        response = connection.getresponse()
        return response.status, response.getheader("Location") or "", response.read().decode()
    finally:
        connection.close()


def session(attempt: Attempt, port: int, wave_go: threading.Event, held: threading.Barrier, go: threading.Event):
    """Hold its slot when its wave starts, read the check page, wait for the others, post the confirm form."""
    headers = cookie_headers(attempt.cookies)
    try:
        try:
            if not wave_go.wait(TIMEOUT_S * 4):
                raise TimeoutError("its wave never started")
            status, location, body = request(
                port, TIME_PATH, headers, {"slot": attempt.slot, "csrfmiddlewaretoken": attempt.cookies["csrf"]}
            )
            if status != 302 or "/book/contact/" not in location:
                taken = status == 200 and TAKEN_MEANWHILE in body
                raise ValueError(f"hold: {'taken meanwhile' if taken else f'HTTP {status} {location}'.strip()}")
            status, _location, page = request(port, CHECK_PATH, headers)
            if status != 200 or not (form := confirm_form(page)):
                raise ValueError(f"check page: HTTP {status}, no confirm form")
            attempt.form = form | {"csrfmiddlewaretoken": csrf_token(page) or attempt.cookies["csrf"]}
            attempt.hold = int(form["hold"])
        except (OSError, ValueError) as error:
            attempt.outcome, attempt.detail = "error", f"{type(error).__name__}: {error}"
        held.wait()
        if not go.wait(TIMEOUT_S * 4) or attempt.outcome:
            return
        attempt.sent = time.time()
        status, location, body = request(port, CHECK_PATH, headers, attempt.form)
        attempt.answered = time.time()
        if status == 302 and "/booking/" in location:
            attempt.outcome = "booked"
        elif status == 200 and TAKEN_MEANWHILE in body:
            attempt.outcome = "taken"
        else:
            attempt.outcome, attempt.detail = "error", f"confirm: HTTP {status} {location}".strip()
    except threading.BrokenBarrierError:
        attempt.outcome, attempt.detail = attempt.outcome or "error", attempt.detail or "barrier broken"
    except OSError as error:
        attempt.outcome, attempt.detail = "error", f"confirm: {type(error).__name__}: {error}"


def run_round(round_: Round, *, port: int) -> None:
    from bookings.models import Booking

    waves = [threading.Event() for _ in range(round_.waves)]
    held, go = threading.Barrier(len(round_.attempts) + 1, timeout=TIMEOUT_S * 4), threading.Event()
    threads = [
        threading.Thread(target=session, args=(a, port, waves[a.wave], held, go), daemon=True) for a in round_.attempts
    ]
    for thread in threads:
        thread.start()
    try:
        for wave, event in enumerate(waves):
            event.set()
            mine = [attempt for attempt in round_.attempts if attempt.wave == wave]
            deadline = time.monotonic() + TIMEOUT_S
            while any(not (a.form or a.outcome) for a in mine) and time.monotonic() < deadline:
                time.sleep(0.01)
            # Each hold's expiry as the service wrote it; the next wave once these holds have expired.
            holds = Booking.objects.filter(pk__in=[a.hold for a in mine if a.hold])
            expiries = dict(holds.values_list("pk", "hold_expires_at"))
            for attempt in mine:
                attempt.expires = expiries[attempt.hold].timestamp() if attempt.hold else 0.0
            if wave < round_.waves - 1:
                last = max((a.expires for a in mine if a.expires), default=time.time())
                time.sleep(max(0.0, last + WAVE_MARGIN_S - time.time()))
        held.wait()  # every session has its check page (or has failed)
    except threading.BrokenBarrierError:
        pass
    stop = threading.Event()
    watcher = threading.Thread(target=lock_waiters, args=(stop, round_), daemon=True)
    watcher.start()
    time.sleep(0.05)  # the watcher is connected
    began = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join(timeout=TIMEOUT_S * 2)
    round_.burst_s = time.perf_counter() - began
    stop.set()
    watcher.join(timeout=5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=120, help="partner sessions confirming at once, each round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slots", type=int, default=4, help="slots a round")
    parser.add_argument("--capacity", type=int, default=3)
    parser.add_argument("--hold-seconds", type=float, default=1.5, help="how long a hold lasts (BENCH_HOLD_SECONDS)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=12, help="gunicorn threads a worker (a DB connection each)")
    parser.add_argument("--max-seconds", type=float, default=240, help="stop after the round in progress")
    args = parser.parse_args()
    if args.sessions > 1000:
        parser.error("--sessions: at most 1 000 (the temporary identity codes of ten birthdays a round)")

    os.environ["BENCH_HOLD_SECONDS"] = str(args.hold_seconds)  # for gunicorn's workers (bench/settings.py)
    with served(workers=args.workers, threads=args.threads, sign_in=False) as (_workdir, start):
        began = time.perf_counter()
        rounds = prepare(sessions=args.sessions, rounds=args.rounds, slots=args.slots, capacity=args.capacity)
        print(f"prepared {args.rounds} rounds of {args.sessions} sessions in {time.perf_counter() - began:.0f} s")
        server = start()
        port = int(server.url.rsplit(":", 1)[1])
        began, meter = time.perf_counter(), MachineMeter(pids=lambda: [server.process.pid, *server.workers()])
        done: list[Round] = []
        for number, round_ in enumerate(rounds):
            if time.perf_counter() - began > args.max_seconds:
                print(f"*** stopped after {number} rounds: --max-seconds {args.max_seconds:.0f} reached ***")
                break
            run_round(round_, port=port)
            outcomes = dict(Counter(attempt.outcome for attempt in round_.attempts))
            print(
                f"  round {number + 1}: {round_.waves} waves of holds, then {outcomes} in {round_.burst_s:.2f} s,"
                f" up to {round_.lock_waiters_max} backends waiting for a lock",
                flush=True,
            )
            done.append(round_)
        return report(args, done, meter.describe(), server.peaks_mb())


def report(args: argparse.Namespace, rounds: list[Round], load: str, peaks_mb: list[float]) -> int:
    from bookings.models import Booking, Slot

    slot_ids = [slot for round_ in rounds for slot in round_.slots]
    excess = overbookings(pk__in=slot_ids)
    confirmed_at = {
        pk: at.timestamp()
        for pk, at in Booking.objects.filter(slot_id__in=slot_ids, status=Booking.Status.CONFIRMED).values_list(
            "pk", "confirmed_at"
        )
    }
    places = sum(Slot.objects.filter(pk__in=slot_ids).values_list("capacity", flat=True))
    attempts = [attempt for round_ in rounds for attempt in round_.attempts]
    outcomes = Counter(attempt.outcome for attempt in attempts)
    # What each confirm found, by the clock the service read after its locks (confirmed_at for a booking; a refusal
    # is only ever for a hold that had expired by then).
    kinds: Counter[str] = Counter()
    expired_while_waiting = 0
    for attempt in (a for a in attempts if a.outcome in ("booked", "taken")):
        booked_at = confirmed_at.get(attempt.hold)
        if attempt.outcome == "booked" and booked_at is None:
            kinds["answered booked, but no confirmed booking in the database"] += 1
            continue
        late = attempt.outcome == "taken" or booked_at >= attempt.expires
        answer = "booked (room left)" if attempt.outcome == "booked" else "refused (slot full)"
        if attempt.sent < attempt.expires:
            expired_while_waiting += late
            kinds["hold live when sent: " + (f"expired while waiting, {answer}" if late else "booked in time")] += 1
        else:
            kinds[f"hold expired before sending: {answer}"] += 1
    confirm_ms = [(a.answered - a.sent) * 1000 for a in attempts if a.outcome in ("booked", "taken")]
    errors = [attempt.detail for attempt in attempts if attempt.outcome == "error"]

    print(f"\nHTTP contention: {len(rounds)} rounds x {args.sessions} partner sessions confirming at once")
    print(f"  gunicorn {args.workers} workers x {args.threads} threads; {args.slots} slots of {args.capacity} a round;")
    print(f"  holds last {args.hold_seconds} s; confirms answered: {dict(outcomes)}")
    print(f"  confirmed in the database: {len(confirmed_at)} of {places} places; overbookings: {excess}")
    for kind, count in sorted(kinds.items()):
        print(f"    {kind}: {count}")
    print(f"  confirms whose hold expired while they waited: {expired_while_waiting}")
    print(f"  most backends waiting for a lock at once: {max(r.lock_waiters_max for r in rounds)}")
    print("  bursts: " + ", ".join(f"{r.burst_s:.2f} s" for r in rounds))
    print(f"  during the rounds: {load}")
    print(f"  confirm under contention p50 / p95 / p99 ms: {percentiles(confirm_ms, digits=0)} (information)")
    print("  gunicorn worker peak RSS (VmHWM), MB: " + ", ".join(f"{v:.1f}" for v in peaks_mb))
    for error in sorted(set(errors))[:10]:
        print(f"  error: {error}")
    return print_targets(
        [
            ("0 overbookings", excess == 0),
            (f"≥ {MIN_SESSIONS} partner sessions confirming at once", args.sessions >= MIN_SESSIONS),
            ("holds expired while their confirm waited (≥ 1)", expired_while_waiting > 0),
            ("every session held, and every confirm answered booked or taken", not errors),
            ("every answer 'booked' is one confirmed booking", outcomes["booked"] == len(confirmed_at)),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
