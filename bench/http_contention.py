"""Overbooking through HTTP: over 100 partner sessions confirm at once on a few slots while their holds expire.

Run: .venv/bin/python bench/http_contention.py [--sessions 120] [--rounds 5] [--slots 4] [--capacity 3]
     [--hold-seconds 1.5] [--workers 3] [--threads 12]

gunicorn (kelabooking/gunicorn.conf.py, production's settings from bench/settings.py, PostgreSQL, Redis database 13)
runs with --workers x --threads, so that many confirms are inside the app at once and queue on the slot's row lock
rather than only in gunicorn's accept queue. Holds last --hold-seconds (BENCH_HOLD_SECONDS, read by bench/settings.py)
instead of 10 minutes.

Every round has --slots fresh slots of --capacity and --sessions fresh partner sessions (signed in, organisation
chosen, terms accepted, own customer locked, matter and contact details in the draft), each session a thread with
its own HTTP connections. The sessions take their holds through HTTP (`POST /en/book/time/`) in waves of
slots x capacity, a slot's `capacity` sessions in each wave, every wave once the holds of the one before have
expired (booking_hold refuses a hold on a full slot); each session then reads its check page (whose confirm form names
its hold) and waits. When the last wave has read its pages, every session posts its confirm at the same moment: the
earlier waves' holds have expired (partners who waited too long on the check page), the last wave's expire while
the confirms queue. A confirm answers a redirect to the booking, or the time page saying the time was just taken;
anything else is an error. A side connection watches how many PostgreSQL backends wait for a lock.

Afterwards a fresh connection counts confirmed bookings per slot against capacity (overbookings must be 0) and
compares them with the answers; gunicorn is stopped and the database, Redis database 13 and the temporary directory
are removed, also on error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import re
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
    make_partner,
    percentile,
    prepare_server_database,
    print_targets,
    save_sessions,
    served,
    signed_in_session,
    temporary_identity_codes,
    vacuum_analyze,
)

LANGUAGE = "en"
TIME_PATH = f"/{LANGUAGE}/book/time/"
CHECK_PATH = f"/{LANGUAGE}/book/check/"
TAKEN_MEANWHILE = "This time was just taken."  # SlotFullError's message on the time page, in English
HIDDEN = r'type="hidden" name="{name}" value="([^"]+)"'
CSRF_IN_FORM = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
MIN_SESSIONS = 100
TIMEOUT_S = 60
# After a wave's last hold was answered, the next wave waits this much longer than a hold lasts.
WAVE_MARGIN_S = 0.1


@dataclass
class Attempt:
    """One partner session in a round."""

    cookies: dict[str, str]
    slot: int
    wave: int
    hold: int = 0
    expires: float = 0.0  # when its hold expires (time.time(), read from the database after its wave)
    held_at: float = 0.0  # when the hold was answered
    form: dict[str, str] = field(default_factory=dict)
    sent: float = 0.0
    answered: float = 0.0
    outcome: str = ""  # booked, taken, or error
    detail: str = ""


@dataclass
class Round:
    slots: list[int]
    attempts: list[Attempt] = field(default_factory=list)
    waves: int = 0
    burst_s: float = 0.0
    lock_waiters_max: int = 0


def prepare(*, sessions: int, rounds: int, slots: int, capacity: int) -> list[Round]:
    prepare_server_database(sign_in=False)  # sets Django up first; nobody signs in here

    from django.db import transaction

    from bookings.models import ServiceLine, Slot
    from kelabooking import clock
    from registry.models import Organisation

    organisation = Organisation.objects.create(business_id=ORGANISATION[0], name=ORGANISATION[1])
    line = ServiceLine.objects.create(name_fi="Kilpailu", name_sv="Tävling", name_en="Contention")
    first_day = clock.localnow().replace(hour=9, minute=0, second=0, microsecond=0) + dt.timedelta(days=2)
    per_wave = slots * capacity
    prepared = []
    for number in range(rounds):
        base = first_day + dt.timedelta(days=number)
        round_slots = Slot.objects.bulk_create(
            Slot(
                service_line=line,
                language="fi",
                starts_at=base + dt.timedelta(minutes=45 * i),
                ends_at=base + dt.timedelta(minutes=45 * (i + 1)),
                capacity=capacity,
            )
            for i in range(slots)
        )
        born = dt.date(1930, 1, 1) + dt.timedelta(days=10 * number)  # 100 codes a day: 1 000 a round at most
        with transaction.atomic():
            partners = [make_partner(code) for code in temporary_identity_codes(sessions, first_birthday=born)]
        customers = make_customers(
            temporary_identity_codes(sessions, first_birthday=born + dt.timedelta(days=18250)),
            organisation=organisation,
        )
        draft = {
            "service_line_id": line.pk,
            "language": "fi",
            "interpreter_language": "",
            "contact": {"phone": "+358401234567", "email": "", "description": "Benchmark"},
        }
        cookies = save_sessions(
            [
                signed_in_session(partner=partner, organisation=organisation, customer=customer, draft=draft)
                for partner, customer in zip(partners, customers, strict=True)
            ]
        )
        # Session n: wave n // per_wave, and in each wave `capacity` sessions for each slot.
        attempts = [
            Attempt(cookies=cookie, slot=round_slots[(n % per_wave) // capacity].pk, wave=n // per_wave)
            for n, cookie in enumerate(cookies)
        ]
        waves = -(-sessions // per_wave)
        prepared.append(Round(slots=[slot.pk for slot in round_slots], attempts=attempts, waves=waves))
    vacuum_analyze()
    return prepared


def lock_waiters(stop: threading.Event, into: Round) -> None:
    """How many of the bench database's backends wait for a lock, every 10 ms (PostgreSQL's statistics view)."""
    with psycopg.connect(
        f"host=127.0.0.1 port=5432 user=postgres dbname={BENCH_DB} connect_timeout=5", autocommit=True
    ) as connection:
        while not stop.wait(0.01):
            (waiting,) = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            into.lock_waiters_max = max(into.lock_waiters_max, waiting)


def _request(port: int, method: str, path: str, headers: dict, fields: dict | None = None):
    """One request on a connection of its own (gunicorn closes idle keep-alive connections after 2 s, and the
    sessions wait longer than that between their steps); (status, Location, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        if fields is None:
            connection.request(method, path, headers=headers)
        else:
            body = urllib.parse.urlencode(fields)
            connection.request(
                method, path, body=body, headers=headers | {"Content-Type": "application/x-www-form-urlencoded"}
            )
        response = connection.getresponse()
        return response.status, response.getheader("Location") or "", response.read().decode()
    finally:
        connection.close()


def session(
    attempt: Attempt, *, port: int, wave_go: threading.Event, held: threading.Barrier, go: threading.Event
) -> None:
    """Hold its slot when its wave starts, read the check page, wait for the others, post the confirm form."""
    headers = cookie_headers(attempt.cookies)
    try:
        try:
            if not wave_go.wait(TIMEOUT_S * 4):
                raise TimeoutError("its wave never started")
            status, location, body = _request(
                port, "POST", TIME_PATH, headers, {"slot": attempt.slot, "csrfmiddlewaretoken": attempt.cookies["csrf"]}
            )
            attempt.held_at = time.time()
            if status != 302 or "/book/contact/" not in location:
                taken = status == 200 and TAKEN_MEANWHILE in body
                raise ValueError(f"hold: {'taken meanwhile' if taken else f'HTTP {status} {location}'.strip()}")
            status, _location, page = _request(port, "GET", CHECK_PATH, headers)
            form = {name: re.search(HIDDEN.format(name=name), page) for name in ("hold", "idempotency_key")}
            if status != 200 or not all(form.values()):
                raise ValueError(f"check page: HTTP {status}, no confirm form")
            attempt.form = {name: match.group(1) for name, match in form.items()}
            attempt.hold = int(attempt.form["hold"])
            csrf = CSRF_IN_FORM.search(page)
            attempt.form["csrfmiddlewaretoken"] = csrf.group(1) if csrf else attempt.cookies["csrf"]
        except (OSError, ValueError) as error:
            attempt.outcome, attempt.detail = "error", f"{type(error).__name__}: {error}"
        held.wait()
        if not go.wait(TIMEOUT_S * 4) or attempt.outcome:
            return
        attempt.sent = time.time()
        status, location, body = _request(port, "POST", CHECK_PATH, headers, attempt.form)
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


def hold_expiries(attempts: list[Attempt]) -> None:
    """Each hold's expiry as the service wrote it, read right after its wave."""
    from bookings.models import Booking

    expiries = dict(
        Booking.objects.filter(pk__in=[a.hold for a in attempts if a.hold]).values_list("pk", "hold_expires_at")
    )
    for attempt in attempts:
        if attempt.hold in expiries:
            attempt.expires = expiries[attempt.hold].timestamp()


def run_round(round_: Round, *, port: int) -> None:
    count = len(round_.attempts)
    wave_events = [threading.Event() for _ in range(round_.waves)]
    held = threading.Barrier(count + 1, timeout=TIMEOUT_S * 4)
    go = threading.Event()
    threads = [
        threading.Thread(
            target=session,
            args=(attempt,),
            kwargs={"port": port, "wave_go": wave_events[attempt.wave], "held": held, "go": go},
            daemon=True,
        )
        for attempt in round_.attempts
    ]
    for thread in threads:
        thread.start()
    try:
        for wave, event in enumerate(wave_events):
            event.set()
            mine = [attempt for attempt in round_.attempts if attempt.wave == wave]
            deadline = time.monotonic() + TIMEOUT_S
            while any(not (a.form or a.outcome) for a in mine) and time.monotonic() < deadline:
                time.sleep(0.01)
            hold_expiries(mine)
            if wave < round_.waves - 1:  # the next wave once these holds have expired
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


def check(rounds: list[Round]) -> tuple[dict[int, tuple[int, int]], dict[int, float | None]]:
    """By a fresh connection: per slot (confirmed, capacity); per confirmed booking its confirmed_at (time.time())."""
    from django.db import connections
    from django.db.models import Count, Q

    from bookings.models import Booking, Slot

    connections.close_all()
    slot_ids = [slot for round_ in rounds for slot in round_.slots]
    per_slot = {
        slot.pk: (slot.confirmed, slot.capacity)
        for slot in Slot.objects.filter(pk__in=slot_ids).annotate(
            confirmed=Count("bookings", filter=Q(bookings__status=Booking.Status.CONFIRMED))
        )
    }
    confirmed = {
        pk: confirmed_at.timestamp()
        for pk, confirmed_at in Booking.objects.filter(
            slot_id__in=slot_ids, status=Booking.Status.CONFIRMED
        ).values_list("pk", "confirmed_at")
    }
    connections.close_all()
    return per_slot, confirmed


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
    with served(workers=args.workers, threads=args.threads) as (_env, _workdir, start):
        began = time.perf_counter()
        rounds = prepare(sessions=args.sessions, rounds=args.rounds, slots=args.slots, capacity=args.capacity)
        print(f"prepared {args.rounds} rounds of {args.sessions} sessions in {time.perf_counter() - began:.0f} s")
        server = start()
        port = int(server.url.rsplit(":", 1)[1])
        run_started = time.perf_counter()
        meter = MachineMeter(pids=lambda: [server.process.pid, *server.workers()])
        done: list[Round] = []
        for number, round_ in enumerate(rounds):
            if time.perf_counter() - run_started > args.max_seconds:
                print(f"*** stopped after {number} rounds: --max-seconds {args.max_seconds:.0f} reached ***")
                break
            run_round(round_, port=port)
            outcomes = Counter(attempt.outcome for attempt in round_.attempts)
            print(
                f"  round {number + 1}: {round_.waves} waves of holds, then {dict(outcomes)} in {round_.burst_s:.2f} s,"
                f" up to {round_.lock_waiters_max} backends waiting for a lock",
                flush=True,
            )
            done.append(round_)
        load = meter.describe()
        per_slot, confirmed = check(done)
        return report(args, done, per_slot, confirmed, server.peaks_mb(), load)


def report(args, rounds: list[Round], per_slot: dict, confirmed_at: dict, peaks_mb: list[float], load: str) -> int:
    attempts = [attempt for round_ in rounds for attempt in round_.attempts]
    outcomes = Counter(attempt.outcome for attempt in attempts)
    overbookings = sum(max(0, confirmed - capacity) for confirmed, capacity in per_slot.values())
    confirmed = sum(confirmed for confirmed, _capacity in per_slot.values())
    places = sum(capacity for _confirmed, capacity in per_slot.values())
    # What each confirm found, by the clock the service read after its locks (confirmed_at for a booking; a refusal
    # is only ever for a hold that had expired by then).
    kinds: Counter[str] = Counter()
    expired_while_waiting = 0
    for attempt in attempts:
        if attempt.outcome not in ("booked", "taken"):
            continue
        live = attempt.sent < attempt.expires
        booked_at = confirmed_at.get(attempt.hold)
        if attempt.outcome == "booked" and booked_at is None:
            kinds["answered booked, but no confirmed booking in the database"] += 1
            continue
        late = attempt.outcome == "taken" or booked_at >= attempt.expires
        answer = "booked (room left)" if attempt.outcome == "booked" else "refused (slot full)"
        if live:
            expired_while_waiting += late
            kinds["hold live when sent: " + (f"expired while waiting, {answer}" if late else "booked in time")] += 1
        else:
            kinds[f"hold expired before sending: {answer}"] += 1
    confirm_ms = [(a.answered - a.sent) * 1000 for a in attempts if a.outcome in ("booked", "taken")]
    errors = [attempt.detail for attempt in attempts if attempt.outcome == "error"]

    print(f"\nHTTP contention: {len(rounds)} rounds x {args.sessions} partner sessions confirming at once")
    print(
        f"  gunicorn {args.workers} workers x {args.threads} threads; {args.slots} slots of {args.capacity} a round;"
        f" holds last {args.hold_seconds} s"
    )
    print(f"  confirms answered: {dict(outcomes)}")
    print(f"  confirmed in the database: {confirmed} of {places} places; overbookings: {overbookings}")
    for kind, count in sorted(kinds.items()):
        print(f"    {kind}: {count}")
    print(f"  confirms whose hold expired while they waited: {expired_while_waiting}")
    print(f"  most backends waiting for a lock at once: {max(r.lock_waiters_max for r in rounds)}")
    print("  bursts: " + ", ".join(f"{r.burst_s:.2f} s" for r in rounds))
    print(f"  during the rounds: {load}")
    print(
        f"  confirm under contention p50 / p95 / p99 ms: {percentile(confirm_ms, 50):.0f} /"
        f" {percentile(confirm_ms, 95):.0f} / {percentile(confirm_ms, 99):.0f} (information)"
    )
    print("  gunicorn worker peak RSS (VmHWM), MB: " + ", ".join(f"{v:.1f}" for v in peaks_mb))
    for error in sorted(set(errors))[:10]:
        print(f"  error: {error}")
    return print_targets(
        [
            ("0 overbookings", overbookings == 0),
            (f"≥ {MIN_SESSIONS} partner sessions confirming at once", args.sessions >= MIN_SESSIONS),
            ("holds expired while their confirm waited (≥ 1)", expired_while_waiting > 0),
            ("every session held, and every confirm answered booked or taken", not errors),
            ("every answer 'booked' is one confirmed booking", outcomes["booked"] == confirmed),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
