"""The HTTP booking journey under load, the floor, the confirm throughput and gunicorn worker memory, in one run.

Run: .venv/bin/python bench/http_journey.py [--users 16] [--workers 3] [--journey-seconds 90]
     [--saturation-seconds 45] [--rounds 3] [--confirms 4500] [--think 0.5 1.5]

gunicorn (production's settings, bench/settings.py) on a free loopback port, PostgreSQL and Redis database 13 (no
Celery worker runs); Locust (bench/locustfile.py) runs the journey of N partners signing in through the sandbox and
booking, then the floor and the confirm back to back in turns. Afterwards: no overbooking, one booking per answered
confirm, each worker's peak RSS. What it measures and the recorded run: docs/benchmarks.md §3.
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
    busy_seconds,
    cpu_seconds,
    make_customers,
    make_partners,
    make_slots,
    overbookings,
    percentile,
    print_targets,
    served,
    signed_in_sessions,
    temporary_identity_codes,
    vacuum_analyze,
)

HOLD_LINE = "Benchmark: confirm phase"
TARGET_CONFIRM_P95_MS = 50
# A guard, not a goal: the confirm's throughput beside the floor's in the same run (reported as information above it).
GUARD_CONFIRM_FLOOR_RATIO = 0.20
TARGET_WORKER_RSS_MB = 150


def prepare(*, workdir: Path, users: int, confirms: int, rounds: int) -> dict[str, Path]:
    """The demo registry and capacity, the journey's people (its partners sign in with typed codes, their customers
    are in the register already), and the floor's and the confirm rounds' prepared sessions, as files for Locust."""
    from django.core.management import call_command

    from registry.models import Organisation

    call_command("load_demo", verbosity=0)
    organisation = Organisation.objects.get(business_id=ORGANISATION[0])
    partners = temporary_identity_codes(users, first_birthday=dt.date(1961, 1, 1))
    customers = temporary_identity_codes(users, first_birthday=dt.date(1981, 1, 1))
    make_customers(customers, organisation=organisation, first_name="Asiakas")
    files = {"people": {"partners": partners, "customers": customers}}
    files["floor"] = prepared_sessions(users, organisation=organisation, holds=False, born=dt.date(1941, 1, 1))
    # Every confirm round uses sessions of its own: a prepared hold is confirmed once.
    confirm = prepared_sessions(confirms, organisation=organisation, holds=True, born=dt.date(1921, 1, 1))
    files |= {f"confirm-{round_}": confirm[round_::rounds] for round_ in range(rounds)}
    vacuum_analyze()
    for name, content in files.items():
        (workdir / f"{name}.json").write_text(json.dumps(content))
    return {name: workdir / f"{name}.json" for name in files}


def prepared_sessions(
    count: int, *, organisation, holds: bool, born: dt.date, drafts_only: bool = False, line_name: str = HOLD_LINE
) -> list[dict[str, str]]:
    """Signed-in partners' sessions as the real steps leave them (their customers locked) and, with `holds`, a time
    held through `booking_hold` and the contact details given, ready for the confirm, whose form names the hold.
    With `drafts_only` too, no time is held: the session names the time to hold (`slot`), as after the matter and
    the contact details, so that the whole booking (hold, check page, confirm) is left to make."""
    from bookings.forms import ContactForm
    from bookings.models import ServiceLine
    from bookings.services import booking_hold
    from kelabooking import clock
    from tests.acting import acting_for

    partners = make_partners(temporary_identity_codes(count, first_birthday=born))
    customers = make_customers(
        temporary_identity_codes(count, first_birthday=born + dt.timedelta(days=3650)), organisation=organisation
    )
    forms = [{"idempotency_key": str(uuid.uuid4())} for _ in partners]
    if not holds:
        cookies = signed_in_sessions(partners, customers, organisation=organisation)
        return [cookie | form for cookie, form in zip(cookies, forms, strict=True)]
    line = ServiceLine.objects.create(name_fi=line_name, name_sv=line_name, name_en=line_name)
    day = clock.localnow().replace(hour=9, minute=0, second=0, microsecond=0) + dt.timedelta(days=2)
    starts = [day + dt.timedelta(days=d, minutes=45 * i) for d in range(10) for i in range(8)]
    capacity = -(-count // len(starts))  # room for every prepared hold, spread evenly
    slots = make_slots(line, starts, capacity=capacity)
    # Half the confirms also queue an e-mail with the calendar entry, as in the journey.
    contacts = [
        ContactForm({"phone": "040 123 4567", "email": email, "description": ""}, names_required=False)
        for email in ("", "asiakas@example.org")
    ]
    assert all(contact.is_valid() for contact in contacts)
    drafts = []
    for n, (partner, customer, form) in enumerate(zip(partners, customers, forms, strict=True)):
        if drafts_only:
            form["slot"] = str(slots[n % len(slots)])
        else:
            acting = acting_for(partner, organisation=organisation, customer=customer, request_id="bench")
            form["hold"] = str(booking_hold(acting=acting, slot_id=slots[n % len(slots)]).pk)
        contact = contacts[n % 2].cleaned_data
        drafts.append({"service_line_id": line.pk, "language": "fi", "interpreter_language": "", "contact": contact})
    cookies = signed_in_sessions(partners, customers, organisation=organisation, drafts=drafts)
    return [cookie | form for cookie, form in zip(cookies, forms, strict=True)]


def locust(user_class: str, *, url: str, users: int, seconds: float, env: dict, workdir: Path, spawn_rate: int) -> dict:
    results, log = workdir / f"{user_class}.json", workdir / f"{user_class}.log"
    command = [BIN / "locust", "-f", "bench/locustfile.py", "--headless", "--host", url, "--users", str(users)]
    command += ["--spawn-rate", str(spawn_rate), "--run-time", f"{seconds:.0f}s", "--stop-timeout", "10"]
    command += ["--only-summary", "--loglevel", "WARNING", user_class]
    print(f"  locust {user_class}: {users} users, at most {seconds:.0f} s", flush=True)
    with log.open("wb") as output:
        subprocess.run(  # noqa: S603 - our own venv's locust, fixed arguments
            command,
            cwd=ROOT,
            env=os.environ | env | {"BENCH_RESULTS": str(results)},
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=seconds + 120,
            check=False,
        )
    found = json.loads(results.read_text()) if results.exists() else {}
    if not found:
        raise SystemExit(f"locust {user_class} recorded no requests; its log (tail):\n{log.read_text()[-3000:]}")
    return found


def summarise(name: str, *entries: dict) -> dict:
    """One row for a step, over the time of all its turns (locust's runs)."""
    timings = [ms for entry in entries for ms in entry["ms"]]
    spans = [entry["last"] - entry["first"] if entry["first"] else 0 for entry in entries]
    return {
        "name": name,
        "ok": len(timings),
        "errors": sum(entry["errors"] for entry in entries),
        "rps": len(timings) / sum(spans) if sum(spans) else 0.0,
        "turns_rps": [len(entry["ms"]) / span if span else 0.0 for entry, span in zip(entries, spans, strict=True)],
        **{f"p{point}": percentile(timings, point) for point in (50, 95, 99)},
        "samples": [sample for entry in entries for sample in entry["samples"]],
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=16, help="simulated users in every phase")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (kelabooking/gunicorn.conf.py: 3)")
    parser.add_argument("--journey-seconds", type=float, default=90, help="with the sign-ins (one a second)")
    parser.add_argument("--saturation-seconds", type=float, default=45, help="floor, and confirm at most, all rounds")
    parser.add_argument("--rounds", type=int, default=3, help="floor and confirm phases take turns this many times")
    parser.add_argument("--confirms", type=int, default=4500, help="prepared sessions for the confirm phases")
    parser.add_argument("--think", type=float, nargs=2, default=(0.5, 1.5), metavar=("MIN", "MAX"))
    args = parser.parse_args()
    with served(workers=args.workers) as (workdir, start):
        began = time.perf_counter()
        files = prepare(workdir=workdir, users=args.users, confirms=args.confirms, rounds=args.rounds)
        print(f"prepared {BENCH_DB} in {time.perf_counter() - began:.0f} s", flush=True)
        return run(args, server=start(), files=files, workdir=workdir)


def run(args: argparse.Namespace, *, server: Server, files: dict[str, Path], workdir: Path) -> int:
    from bookings.models import Booking

    users = args.users
    think = {"BENCH_THINK_MIN": str(args.think[0]), "BENCH_THINK_MAX": str(args.think[1])}
    # (phase, user class, seconds, environment, spawn rate): the sign-ins call the sandbox on the same server, one a
    # second, as partners arrive at work; then the floor and the confirm take turns.
    phases = [("journey", "PartnerUser", args.journey_seconds, {"BENCH_PEOPLE": str(files["people"]), **think}, 1)]
    seconds = args.saturation_seconds / args.rounds
    for round_ in range(args.rounds):
        phases.append(("floor", "FloorUser", seconds, {"BENCH_SESSIONS": str(files["floor"])}, users))
        phases.append(("confirm", "ConfirmUser", seconds, {"BENCH_SESSIONS": str(files[f"confirm-{round_}"])}, users))
    results: dict[str, list[dict]] = {}
    cpu: dict[str, dict[str, float]] = {}  # per phase: CPU seconds of gunicorn's workers, Locust, the machine
    turns: dict[str, list[tuple[float, float]]] = {}  # per phase and turn: machine CPU seconds, wall seconds
    loads: dict[str, list[dict[str, float]]] = {}  # per phase and turn: MachineMeter.read()

    def snapshot() -> dict[str, float]:
        locust_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)  # Locust runs as a child and has been waited for
        return {
            "gunicorn": sum(cpu_seconds(pid) for pid in server.workers()),
            "locust": locust_cpu.ru_utime + locust_cpu.ru_stime,
            "machine": busy_seconds(),
        }

    for phase, user_class, seconds, env, spawn_rate in phases:
        meter = MachineMeter(pids=lambda: [server.process.pid, *server.workers()])
        before, began = snapshot(), time.monotonic()
        options = {"url": server.url, "users": users, "seconds": seconds, "workdir": workdir, "spawn_rate": spawn_rate}
        results.setdefault(phase, []).append(locust(user_class, env=env, **options))
        after = snapshot()
        spent = cpu.setdefault(phase, dict.fromkeys(after, 0.0))
        for part in after:
            spent[part] += after[part] - before[part]
        turns.setdefault(phase, []).append((after["machine"] - before["machine"], time.monotonic() - began))
        loads.setdefault(phase, []).append(meter.read())
    time.sleep(1)  # one more memory sample after the load
    peaks_mb = server.peaks_mb()
    excess = overbookings()
    booked = Booking.objects.filter(status=Booking.Status.CONFIRMED, slot__service_line__name_en=HOLD_LINE).count()

    journey = results["journey"][0]
    rows = [summarise(name, entry) for name, entry in sorted(journey.items())]
    journey_ok = sum(row["ok"] for row in rows if row["name"] != "sign-in (whole flow)")
    journey_errors = sum(row["errors"] for row in rows if not row["name"].startswith("sign-in"))
    signed_in = next((row["ok"] for row in rows if row["name"] == "sign-in (whole flow)"), 0)
    floor = summarise("FLOOR", *(result["FLOOR"] for result in results["floor"]))
    confirm = summarise("CONFIRM", *(result["CONFIRM"] for result in results["confirm"]))
    confirm_p95 = next(row["p95"] for row in rows if row["name"] == "book: CONFIRM")
    ratio = confirm["rps"] / floor["rps"] if floor["rps"] else 0.0

    print_table(f"1. journey: {users} partners, think time {args.think[0]}–{args.think[1]} s", rows)
    span = max(entry["last"] for entry in journey.values()) - min(entry["first"] for entry in journey.values())
    print(f"  all requests: {journey_ok} ok, {journey_errors} errors, {journey_ok / span:.1f} req/s over {span:.0f} s")
    print(
        f"  sign-in: {signed_in} of {users} partners signed in;"
        f" {sum(row['errors'] for row in rows if row['name'].startswith('sign-in'))} failed requests on the way"
        " (information: the sandbox's endpoints are served by the same workers; a failed sign-in starts over)"
    )
    print_table(f"2–3. back to back, {users} users, {args.rounds} turns each: floor and confirm", [floor, confirm])
    for phase, row in (("floor", floor), ("confirm", confirm)):
        print(f"  {phase} requests/s in each turn: " + ", ".join(f"{v:.1f}" for v in row["turns_rps"]))
        # Whether a slower turn did more work per request or left the machine idle (waiting on locks or the disk).
        cells = [
            f"{machine / max(len(result[row['name']]['ms']), 1) * 1000:.2f} ms ({machine / (wall * CORES):.0%} busy)"
            for (machine, wall), result in zip(turns[phase], results[phase], strict=True)
        ]
        print(f"  {phase} machine CPU per request in each turn: " + ", ".join(cells))
    print(f"  overbookings: {excess}; confirm phase: {confirm['ok']} confirms answered, {booked} bookings confirmed")
    print("\n  CPU per request, ms: gunicorn workers + Locust + the rest (PostgreSQL, Redis, kernel, others) = machine")
    for phase, requests in (("journey", journey_ok), ("floor", floor["ok"]), ("confirm", confirm["ok"])):
        used = {part: seconds / max(requests, 1) * 1000 for part, seconds in cpu[phase].items()}
        rest = used["machine"] - used["gunicorn"] - used["locust"]
        print(f"    {phase:<8} {used['gunicorn']:6.2f} + {used['locust']:5.2f} + {rest:5.2f} = {used['machine']:6.2f}")
    print("  other processes on the machine (not gunicorn, Locust, this script or its PostgreSQL backends)")
    for phase, readings in loads.items():
        others = sum(max(r["others"], 0) for r in readings) / (sum(r["wall"] for r in readings) * CORES)
        print(f"    {phase:<8} {others:.0%} of the {CORES} cores")
    print("\n5. gunicorn worker peak RSS (VmHWM), MB: " + ", ".join(f"{v:.1f}" for v in peaks_mb))
    print(f"\n  confirm / floor throughput (information; guard ≥ {GUARD_CONFIRM_FLOOR_RATIO:.2f}): {ratio:.2f}")
    peak = max(peaks_mb, default=0.0)
    return print_targets(
        [
            (f"confirm p95 ≤ {TARGET_CONFIRM_P95_MS} ms at {users} partners", confirm_p95 <= TARGET_CONFIRM_P95_MS),
            (f"guard: confirm ≥ {GUARD_CONFIRM_FLOOR_RATIO:.0%} of the floor's", ratio >= GUARD_CONFIRM_FLOOR_RATIO),
            (f"worker peak RSS ≤ {TARGET_WORKER_RSS_MB} MB", 0 < peak <= TARGET_WORKER_RSS_MB),
            ("0 overbookings", excess == 0),
            ("every answered confirm booked once", booked == confirm["ok"]),
            (f"every partner signed in ({signed_in} of {users})", signed_in == users),
            ("no request failed after sign-in", journey_errors + floor["errors"] + confirm["errors"] == 0),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
