"""The HTTP booking journey under load, the floor, the confirm throughput and gunicorn worker memory, in one run.

Run: .venv/bin/python bench/http_journey.py [--users 16] [--workers 3] [--journey-seconds 90]
     [--saturation-seconds 45] [--rounds 3] [--confirms 4500] [--think 0.5 1.5]

gunicorn (kelabooking/gunicorn.conf.py, DEBUG off) serves the app and the Suomi.fi sandbox on a free port of
127.0.0.1, on a throw-away PostgreSQL database and Redis database 13 (cache and Celery broker; no worker runs, so
messages wait in Redis, as they would for a worker on another machine). Locust runs three phases against it:

1. journey: N partners sign in through the sandbox, one a second (a failed sign-in starts over, three times at
   most), and then, with a think time between pages, book and cancel, read the overview or browse the time picker;
   the pages are measured from when the last partner has signed in;
2. floor: N users request the floor view (bench/urls.py) back to back;
3. confirm: N users post booking confirms back to back, each with a session prepared as the earlier steps leave it.

Floor and confirm take turns (--rounds), so that a change in the speed of this shared machine falls on both alike.

Afterwards it checks the database (no slot over capacity; one booking per successful confirm), reads each worker's
peak RSS and reports the confirm's throughput beside the floor's (information, guarded at 20 %); then it stops
gunicorn and drops the database, the Redis database and the temporary directory, also on error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    BENCH_DB,
    BIN,
    CORES,
    ORGANISATION,
    ROOT,
    MachineMeter,
    Server,
    acting_for,
    busy_seconds,
    cpu_seconds,
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

HOLD_LINE = "Benchmark: confirm phase"
TARGET_CONFIRM_P95_MS = 50
# A guard, not a goal: the confirm's throughput beside the floor's in the same run (reported as information above it).
GUARD_CONFIRM_FLOOR_RATIO = 0.20
TARGET_WORKER_RSS_MB = 150


# --- Data: demo registry and capacity, the partners' customers, prepared sessions -----------------------------


def prepare(*, workdir: Path, users: int, confirms: int, rounds: int) -> dict[str, Path]:
    from django.core.management import call_command

    prepare_server_database()
    call_command("load_demo", verbosity=0)

    from registry.models import Organisation

    # The journey's partners sign in with typed codes (the sign-in makes their users); their customers are in the
    # register already.
    partners = temporary_identity_codes(users, first_birthday=dt.date(1961, 1, 1))
    customers = temporary_identity_codes(users, first_birthday=dt.date(1981, 1, 1))
    make_customers(customers, organisation=Organisation.objects.get(business_id=ORGANISATION[0]), first_name="Asiakas")
    files = {"people": workdir / "people.json", "floor": workdir / "floor.json"}
    files["people"].write_text(json.dumps({"partners": partners, "customers": customers}))
    files["floor"].write_text(json.dumps(prepared_sessions(users, holds=False, first_birthday=dt.date(1941, 1, 1))))
    # Every confirm round uses sessions of its own: a prepared hold is confirmed once.
    confirm_sessions = prepared_sessions(confirms, holds=True, first_birthday=dt.date(1921, 1, 1))
    for round_ in range(rounds):
        files[f"confirm-{round_}"] = workdir / f"confirm-{round_}.json"
        files[f"confirm-{round_}"].write_text(json.dumps(confirm_sessions[round_::rounds]))
    vacuum_analyze()
    return files


def prepared_sessions(count: int, *, holds: bool, first_birthday: dt.date) -> list[dict[str, str]]:
    """Signed-in partners' sessions as the real steps leave them: the organisation chosen, the terms accepted, the
    customer locked, and (with `holds`) a time held through `booking_hold` and the contact details given, ready for
    the confirm, whose form names the hold."""
    from django.db import transaction

    from bookings.forms import ContactForm
    from bookings.models import ServiceLine, Slot
    from bookings.services import booking_hold
    from kelabooking import clock
    from registry.models import Organisation

    organisation = Organisation.objects.get(business_id=ORGANISATION[0])
    partner_codes = temporary_identity_codes(count, first_birthday=first_birthday)
    customer_codes = temporary_identity_codes(count, first_birthday=first_birthday + dt.timedelta(days=3650))
    with transaction.atomic():
        partners = [make_partner(code) for code in partner_codes]
    customers = make_customers(customer_codes, organisation=organisation)
    slots: list[Slot] = []
    if holds:
        line = ServiceLine.objects.create(name_fi=HOLD_LINE, name_sv=HOLD_LINE, name_en=HOLD_LINE)
        day = clock.localnow().replace(hour=9, minute=0, second=0, microsecond=0) + dt.timedelta(days=2)
        starts = [day + dt.timedelta(days=d, minutes=45 * i) for d in range(10) for i in range(8)]
        capacity = -(-count // len(starts))  # room for every prepared hold, spread evenly
        slots = Slot.objects.bulk_create(
            Slot(service_line=line, language="fi", starts_at=s, ends_at=s + dt.timedelta(minutes=45), capacity=capacity)
            for s in starts
        )
    # Half the confirms also queue an e-mail with the calendar entry, as in the journey.
    contacts = [
        ContactForm({"phone": "040 123 4567", "email": email, "description": ""}, names_required=False)
        for email in ("", "asiakas@example.org")
    ]
    assert all(contact.is_valid() for contact in contacts)
    sessions, forms = [], []
    for n, (partner, customer) in enumerate(zip(partners, customers, strict=True)):
        draft = None
        form = {"idempotency_key": str(uuid.uuid4())}
        if holds:
            slot = slots[n % len(slots)]
            acting = acting_for(partner=partner, organisation=organisation, customer=customer)
            form["hold"] = str(booking_hold(acting=acting, slot_id=slot.pk).pk)
            draft = {
                "service_line_id": slot.service_line_id,
                "language": "fi",
                "interpreter_language": "",
                "contact": contacts[n % 2].cleaned_data,
            }
        sessions.append(signed_in_session(partner=partner, organisation=organisation, customer=customer, draft=draft))
        forms.append(form)
    return [cookies | form for cookies, form in zip(save_sessions(sessions), forms, strict=True)]


# --- Where the CPU goes: gunicorn workers, PostgreSQL, Locust -----------------------------------------------


def cpu_snapshot(server: Server) -> dict[str, float]:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "gunicorn": sum(cpu_seconds(pid) for pid in server.workers()),
        "locust": children.ru_utime + children.ru_stime,  # locust runs as a child and has been waited for
        "machine": busy_seconds(),
    }


# --- Locust ---------------------------------------------------------------------------------------------------


def locust(
    user_class: str, *, url: str, users: int, seconds: float, env: dict[str, str], workdir: Path, spawn_rate: int = 0
) -> dict:
    results = workdir / f"{user_class}.json"
    command = [
        BIN / "locust",
        "-f",
        "bench/locustfile.py",
        "--headless",
        "--host",
        url,
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate or users),
        "--run-time",
        f"{seconds:.0f}s",
        "--stop-timeout",
        "10",
        "--only-summary",
        "--loglevel",
        "WARNING",
        user_class,
    ]
    print(f"  locust {user_class}: {users} users, at most {seconds:.0f} s", flush=True)
    with (workdir / f"{user_class}.log").open("wb") as log:
        subprocess.run(  # noqa: S603 - our own venv's locust, fixed arguments
            command,
            cwd=ROOT,
            env=os.environ | env | {"BENCH_RESULTS": str(results)},
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=seconds + 120,
            check=False,
        )
    found = json.loads(results.read_text()) if results.exists() else {}
    if not found:
        log = (workdir / f"{user_class}.log").read_text(errors="replace")
        raise SystemExit(f"locust {user_class} recorded no requests; its log (tail):\n{log[-3000:]}")
    return found


def summarise(name: str, entry: dict) -> dict:
    timings = entry["ms"]
    span = (entry["last"] - entry["first"]) if entry["first"] else 0
    return {
        "name": name,
        "ok": len(timings),
        "errors": entry["errors"],
        "rps": len(timings) / span if span else 0.0,
        "p50": percentile(timings, 50),
        "p95": percentile(timings, 95),
        "p99": percentile(timings, 99),
        "samples": entry["samples"],
    }


def summarise_rounds(name: str, entries: list[dict]) -> dict:
    """One row for a phase that ran in turns: its requests over the time of all its turns."""
    rows = [summarise(name, entry) for entry in entries]
    timings = [ms for entry in entries for ms in entry["ms"]]
    span = sum(entry["last"] - entry["first"] for entry in entries if entry["first"])
    return {
        "name": name,
        "ok": len(timings),
        "errors": sum(row["errors"] for row in rows),
        "rps": len(timings) / span if span else 0.0,
        "p50": percentile(timings, 50),
        "p95": percentile(timings, 95),
        "p99": percentile(timings, 99),
        "samples": [sample for row in rows for sample in row["samples"]],
        "turns_rps": [row["rps"] for row in rows],
    }


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"  {'step':<42} {'ok':>6} {'errors':>6} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")
    for row in rows:
        print(
            f"  {row['name']:<42} {row['ok']:>6} {row['errors']:>6} {row['rps']:>7.1f} "
            f"{row['p50']:>7.1f} {row['p95']:>7.1f} {row['p99']:>7.1f}"
        )
        for sample in row["samples"]:
            print(f"      error: {sample}")


# --- The run --------------------------------------------------------------------------------------------------


def check_database() -> tuple[int, int]:
    """(slots over capacity, confirmed bookings on the confirm phase's line), by a fresh connection."""
    from django.db import connections
    from django.db.models import Count, F, Q

    from bookings.models import Booking, Slot

    connections.close_all()
    over = (
        Slot.objects.annotate(n=Count("bookings", filter=Q(bookings__status=Booking.Status.CONFIRMED)))
        .filter(n__gt=F("capacity"))
        .count()
    )
    confirmed = Booking.objects.filter(status=Booking.Status.CONFIRMED, slot__service_line__name_en=HOLD_LINE).count()
    connections.close_all()
    return over, confirmed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=16, help="simulated users in every phase")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (kelabooking/gunicorn.conf.py: 3)")
    parser.add_argument("--journey-seconds", type=float, default=90, help="with the sign-ins (one a second)")
    parser.add_argument(
        "--saturation-seconds", type=float, default=45, help="the floor phase, and the confirm at most, in all rounds"
    )
    parser.add_argument("--rounds", type=int, default=3, help="floor and confirm phases take turns this many times")
    parser.add_argument("--confirms", type=int, default=4500, help="prepared sessions for the confirm phases")
    parser.add_argument("--think", type=float, nargs=2, default=(0.5, 1.5), metavar=("MIN", "MAX"))
    args = parser.parse_args()

    with served(workers=args.workers) as (_env, workdir, start):
        started = time.perf_counter()
        files = prepare(workdir=workdir, users=args.users, confirms=args.confirms, rounds=args.rounds)
        print(f"prepared {BENCH_DB} in {time.perf_counter() - started:.0f} s", flush=True)
        server = start()
        return run(args, server=server, files=files, workdir=workdir)


def run(args: argparse.Namespace, *, server: Server, files: dict[str, Path], workdir: Path) -> int:
    users = args.users
    think = {"BENCH_THINK_MIN": str(args.think[0]), "BENCH_THINK_MAX": str(args.think[1])}
    # name: (user class, seconds, environment, spawn rate). The floor and the confirm take turns, so that a change in
    # the speed of this shared machine during the run falls on both alike.
    phases = [
        (
            "journey",
            "PartnerUser",
            args.journey_seconds,
            {"BENCH_PEOPLE": str(files["people"]), **think},
            1,  # the sign-ins call the sandbox on the same server: one a second, as partners arrive at work
        )
    ]
    seconds = args.saturation_seconds / args.rounds
    for round_ in range(args.rounds):
        phases.append(("floor", "FloorUser", seconds, {"BENCH_SESSIONS": str(files["floor"])}, users))
        confirm_env = {"BENCH_SESSIONS": str(files[f"confirm-{round_}"])}
        phases.append(("confirm", "ConfirmUser", seconds, confirm_env, users))
    results: dict[str, list[dict]] = {}
    cpu: dict[str, dict[str, float]] = {}
    turns: dict[str, list[tuple[float, float]]] = {}  # per phase and turn: machine CPU seconds, wall seconds
    loads: dict[str, list[dict[str, float]]] = {}  # per phase and turn: MachineMeter.read()
    for phase, user_class, seconds, env, spawn_rate in phases:
        meter = MachineMeter(pids=lambda: [server.process.pid, *server.workers()])
        before, started = cpu_snapshot(server), time.monotonic()
        result = locust(
            user_class, url=server.url, users=users, seconds=seconds, env=env, workdir=workdir, spawn_rate=spawn_rate
        )
        results.setdefault(phase, []).append(result)
        after, wall = cpu_snapshot(server), time.monotonic() - started
        spent = cpu.setdefault(phase, dict.fromkeys(after, 0.0))
        for part in after:
            spent[part] += after[part] - before[part]
        turns.setdefault(phase, []).append((after["machine"] - before["machine"], wall))
        loads.setdefault(phase, []).append(meter.read())
    time.sleep(1)  # one more memory sample after the load
    peaks_mb = server.peaks_mb()
    over_capacity, confirmed_in_phase = check_database()

    journey = results["journey"][0]
    journey_rows = [summarise(name, entry) for name, entry in sorted(journey.items())]
    journey_ok = sum(row["ok"] for row in journey_rows if row["name"] != "sign-in (whole flow)")
    journey_errors = sum(row["errors"] for row in journey_rows if not row["name"].startswith("sign-in"))
    sign_in_errors = sum(row["errors"] for row in journey_rows if row["name"].startswith("sign-in"))
    signed_in = next((row["ok"] for row in journey_rows if row["name"] == "sign-in (whole flow)"), 0)
    floor_row = summarise_rounds("FLOOR", [result["FLOOR"] for result in results["floor"]])
    confirm_row = summarise_rounds("CONFIRM", [result["CONFIRM"] for result in results["confirm"]])
    journey_confirm = next(row for row in journey_rows if row["name"] == "book: CONFIRM")
    ratio = confirm_row["rps"] / floor_row["rps"] if floor_row["rps"] else 0.0
    peak = max(peaks_mb, default=0.0)

    print_table(f"1. journey: {users} partners, think time {args.think[0]}–{args.think[1]} s", journey_rows)
    span = max(e["last"] for e in journey.values()) - min(e["first"] for e in journey.values())
    print(f"  all requests: {journey_ok} ok, {journey_errors} errors, {journey_ok / span:.1f} req/s over {span:.0f} s")
    print(
        f"  sign-in: {signed_in} of {users} partners signed in; {sign_in_errors} failed requests on the way"
        " (information: the sandbox's endpoints are served by the same workers; a failed sign-in starts over)"
    )
    title = f"2–3. back to back, {users} users, {args.rounds} turns each: floor and confirm"
    print_table(title, [floor_row, confirm_row])
    for row in (floor_row, confirm_row):
        print(f"  {row['name'].lower()} requests/s in each turn: " + ", ".join(f"{v:.1f}" for v in row["turns_rps"]))
    # Whether a slower turn did more work per request or left the machine idle (waiting on locks or the disk).
    for phase, name in (("floor", "FLOOR"), ("confirm", "CONFIRM")):
        cells = []
        for (machine, wall), result in zip(turns[phase], results[phase], strict=True):
            requests = max(summarise(name, result[name])["ok"], 1)
            cells.append(f"{machine / requests * 1000:.2f} ms ({machine / (wall * CORES):.0%} busy)")
        print(f"  {phase} machine CPU per request in each turn: " + ", ".join(cells))
    print(f"  slots over capacity: {over_capacity}; confirm phase: {confirm_row['ok']} confirms answered, ", end="")
    print(f"{confirmed_in_phase} bookings confirmed in the database")
    print(
        "\n  CPU per request, ms: gunicorn workers + Locust + the rest (PostgreSQL, Redis, kernel, other processes)"
        " = machine"
    )
    for phase, requests in (("journey", journey_ok), ("floor", floor_row["ok"]), ("confirm", confirm_row["ok"])):
        used = {part: seconds / max(requests, 1) * 1000 for part, seconds in cpu[phase].items()}
        rest = used["machine"] - used["gunicorn"] - used["locust"]
        print(f"    {phase:<8} {used['gunicorn']:6.2f} + {used['locust']:5.2f} + {rest:5.2f} = {used['machine']:6.2f}")
    print(
        "  other processes on the machine (not the benchmark's: gunicorn, Locust, this script, its PostgreSQL backends)"
    )
    for phase, readings in loads.items():
        others = sum(max(r["others"], 0) for r in readings)
        capacity = sum(r["wall"] for r in readings) * CORES
        print(f"    {phase:<8} {others / capacity:.0%} of the {CORES} cores")
    print("\n5. gunicorn worker peak RSS (VmHWM), MB: " + ", ".join(f"{v:.1f}" for v in peaks_mb))

    print(f"\n  confirm / floor throughput (information; guard ≥ {GUARD_CONFIRM_FLOOR_RATIO:.2f}): {ratio:.2f}")
    return print_targets(
        [
            (
                f"confirm p95 ≤ {TARGET_CONFIRM_P95_MS} ms at {users} partners",
                journey_confirm["p95"] <= TARGET_CONFIRM_P95_MS,
            ),
            (
                f"guard: confirm ≥ {GUARD_CONFIRM_FLOOR_RATIO:.0%} of the floor's throughput",
                ratio >= GUARD_CONFIRM_FLOOR_RATIO,
            ),
            (f"worker peak RSS ≤ {TARGET_WORKER_RSS_MB} MB", 0 < peak <= TARGET_WORKER_RSS_MB),
            ("no slot over capacity", over_capacity == 0),
            ("every answered confirm booked once", confirmed_in_phase == confirm_row["ok"]),
            (f"every partner signed in ({signed_in} of {users})", signed_in == users),
            ("no request failed after sign-in", journey_errors + floor_row["errors"] + confirm_row["errors"] == 0),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
