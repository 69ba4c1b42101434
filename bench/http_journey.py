"""The HTTP booking journey under load, the floor, the confirm throughput and gunicorn worker memory, in one run.

Run: .venv/bin/python bench/http_journey.py [--users 16] [--journey-seconds 60] [--saturation-seconds 45] [--rounds 3]

gunicorn (kelabooking/gunicorn.conf.py, DEBUG off) serves the app and the Suomi.fi sandbox on a free port of
127.0.0.1, on a throw-away PostgreSQL database and Redis database 13 (cache and Celery broker; no worker runs, so
messages wait in Redis, as they would for a worker on another machine). Locust runs three phases against it:

1. journey: N partners sign in through the sandbox and then, with a think time between pages, book and cancel, read
   the overview or browse the time picker;
2. floor: N users request the floor view (bench/urls.py) back to back;
3. confirm: N users post booking confirms back to back, each with a session prepared as the earlier steps leave it.

Floor and confirm take turns (--rounds), so that a change in the speed of this shared machine falls on both alike.

Afterwards it checks the database (no slot over capacity; one booking per successful confirm), reads each worker's
peak RSS, stops gunicorn, and drops the database, the Redis database and the temporary directory, also on error.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import secrets
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import BENCH_DB, ROOT, create_database, drop_database, percentile  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/13"
REDIS_SENTINEL = "kelabooking-bench:owner"
BIN = Path(sys.executable).parent
HOLD_LINE = "Benchmark: confirm phase"
TARGET_CONFIRM_P95_MS = 50
TARGET_CONFIRM_FLOOR_RATIO = 0.40
TARGET_WORKER_RSS_MB = 150


def temporary_identity_codes(count: int, *, first_birthday: dt.date) -> list[str]:
    """Valid personal identity codes with temporary individual numbers (900–999): nobody real."""
    from partners.sandbox.people import temporary_identity_code

    return [temporary_identity_code(index, first_birthday=first_birthday) for index in range(count)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment(*, port: int, workdir: Path) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
        "REDIS_URL": REDIS_URL,
        "CELERY_BROKER_URL": REDIS_URL,
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "SMS_BACKEND": "kelabooking.sms.LocmemBackend",
        "SUOMIFI_SANDBOX": "1",
        "SUOMIFI_SANDBOX_PUBLIC_DEMO": "1",
        "SUOMIFI_SANDBOX_BASE_URL": f"http://127.0.0.1:{port}",
        "OIDC_RP_KEY_DIR": str(workdir / "keys"),
        "OIDC_RP_GENERATE_KEYS": "1",
        "STATIC_ROOT": str(workdir / "static"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "PYTHONPATH": str(ROOT),
    }


# --- Redis database 13: refuse one that someone else uses, flush ours at the end ------------------------------


def claim_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    if client.dbsize() and not client.exists(REDIS_SENTINEL):
        raise SystemExit(f"{REDIS_URL} holds keys that are not the benchmark's: refusing to use (and flush) it")
    client.flushdb()
    client.set(REDIS_SENTINEL, "bench/http_journey.py")


def release_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


# --- Data: demo registry and capacity, the partners' customers, prepared sessions -----------------------------


def prepare(*, workdir: Path, users: int, confirms: int, rounds: int) -> dict[str, Path]:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    call_command("load_demo", verbosity=0)

    from bookings.models import Customer
    from partners import keys
    from partners.sandbox import oidc as sandbox_oidc

    # Generated once here, so the workers only read them.
    keys.signing_key(), keys.encryption_key(), sandbox_oidc.op_signing_key()

    partners = temporary_identity_codes(users, first_birthday=dt.date(1961, 1, 1))
    customers = temporary_identity_codes(users, first_birthday=dt.date(1981, 1, 1))
    Customer.objects.bulk_create(
        Customer(identity_code=code, first_name="Asiakas", last_name=f"{n}", phone="+358401110000")
        for n, code in enumerate(customers)
    )
    files = {"people": workdir / "people.json", "floor": workdir / "floor.json"}
    files["people"].write_text(json.dumps({"partners": partners, "customers": customers}))
    files["floor"].write_text(json.dumps(prepared_sessions(users, holds=False, first_birthday=dt.date(1941, 1, 1))))
    # Every confirm round uses sessions of its own: a prepared hold is confirmed once.
    confirm_sessions = prepared_sessions(confirms, holds=True, first_birthday=dt.date(1921, 1, 1))
    for round_ in range(rounds):
        files[f"confirm-{round_}"] = workdir / f"confirm-{round_}.json"
        files[f"confirm-{round_}"].write_text(json.dumps(confirm_sessions[round_::rounds]))
    from django.db import connection, connections

    # As bench/growth.py does: otherwise autovacuum wakes up for the rows written here (thousands of users, sessions
    # and holds) in the middle of the measured phases, and its CPU falls on whichever phase runs then.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    connections.close_all()
    return files


def prepared_sessions(count: int, *, holds: bool, first_birthday: dt.date) -> list[dict[str, str]]:
    """Signed-in partners' sessions as the real steps leave them: the organisation chosen, the terms accepted, the
    customer locked, and (with `holds`) a time held and the contact details given, ready for the confirm."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session

    from bookings.forms import ContactForm
    from bookings.models import Customer, ServiceLine, Slot
    from bookings.services import booking_hold
    from bookings.views import DRAFT_KEY
    from kelabooking import clock
    from partners import context
    from partners.middleware import LAST_SEEN, LOGIN_AT
    from partners.models import User
    from registry.models import Organisation

    organisation = Organisation.objects.get(business_id="0201256-6")
    partner_codes = temporary_identity_codes(count, first_birthday=first_birthday)
    customer_codes = temporary_identity_codes(count, first_birthday=first_birthday + dt.timedelta(days=3650))
    password = make_password(None)
    partners = User.objects.bulk_create(
        User(username=f"bench-{code}", identity_code=code, first_name="Bench", last_name="Partner", password=password)
        for code in partner_codes
    )
    customers = Customer.objects.bulk_create(
        Customer(identity_code=code, first_name="Bench", last_name="Customer", phone="+358401110000")
        for code in customer_codes
    )
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
    now = time.time()
    prepared, rows = [], []
    for n, (partner, customer) in enumerate(zip(partners, customers, strict=True)):
        data = {
            SESSION_KEY: str(partner.pk),
            BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0],
            HASH_SESSION_KEY: partner.get_session_auth_hash(),
            LOGIN_AT: now,
            LAST_SEEN: now,
        }
        # The acting context's own steps write it, so its format stays theirs alone.
        request = SimpleNamespace(session=data, user=partner)
        context.choose_organisation(request, business_id=organisation.business_id, name=organisation.name)
        context.accept_terms(request)
        context.lock_customer(request, customer)
        key = str(uuid.uuid4())
        if holds:
            slot = slots[n % len(slots)]
            hold = booking_hold(slot_id=slot.pk, customer=customer, partner=partner, organisation=organisation)
            data[DRAFT_KEY] = {
                "service_line_id": slot.service_line_id,
                "language": "fi",
                "interpreter_language": "",
                "hold_id": hold.pk,
                "contact": contacts[n % 2].cleaned_data,
                "idempotency_key": key,
            }
        store = SessionStore()
        session_key = store._get_new_session_key()
        rows.append(
            Session(
                session_key=session_key,
                session_data=store.encode(data),
                expire_date=clock.now() + dt.timedelta(seconds=settings.SESSION_COOKIE_AGE),
            )
        )
        csrf = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
        prepared.append({"sessionid": session_key, "csrf": csrf, "idempotency_key": key})
    Session.objects.bulk_create(rows)
    return prepared


# --- gunicorn and its workers' memory -------------------------------------------------------------------------


class Server:
    def __init__(self, env: dict[str, str], *, workers: int, log: Path) -> None:
        self.url = f"http://{env['GUNICORN_BIND']}"
        self.log = log.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own venv's gunicorn, fixed arguments
            [BIN / "gunicorn", "-c", "kelabooking/gunicorn.conf.py", "--workers", str(workers), "--max-requests", "0"]
            + ["kelabooking.wsgi"],
            cwd=ROOT,
            env=os.environ | env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.peak_rss: dict[int, int] = {}
        self._sampling = threading.Event()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited with {self.process.returncode}; see its log")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response,  # noqa: S310 - loopback
            ):
                if response.status == 200:
                    return
            time.sleep(0.25)
        raise SystemExit("gunicorn did not answer /healthz in time")

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    @staticmethod
    def _status_kib(pid: int, field: str) -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        return 0

    def sample_memory(self) -> None:
        """Every half second, each worker's peak RSS so far (VmHWM: the kernel's own high-water mark)."""
        while not self._sampling.wait(0.5):
            for pid in self.workers():
                with contextlib.suppress(OSError):
                    self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), self._status_kib(pid, "VmHWM"))

    def start_sampling(self) -> None:
        threading.Thread(target=self.sample_memory, daemon=True).start()

    def stop(self) -> None:
        self._sampling.set()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


# --- Where the CPU goes: gunicorn workers, PostgreSQL, Locust -----------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    return 0.0


CORES = os.cpu_count() or 1


def _busy_seconds() -> float:
    """CPU time spent by the whole machine, all cores (/proc/stat: everything but idle and iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / TICKS


def cpu_snapshot(server: Server) -> dict[str, float]:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "gunicorn": sum(cpu_seconds(pid) for pid in server.workers()),
        "locust": children.ru_utime + children.ru_stime,  # locust runs as a child and has been waited for
        "machine": _busy_seconds(),
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
    if not results.exists():
        raise SystemExit(f"locust {user_class} wrote no results; see {workdir / f'{user_class}.log'}")
    return json.loads(results.read_text())


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
    parser.add_argument("--journey-seconds", type=float, default=60)
    parser.add_argument(
        "--saturation-seconds", type=float, default=45, help="the floor phase, and the confirm at most, in all rounds"
    )
    parser.add_argument("--rounds", type=int, default=3, help="floor and confirm phases take turns this many times")
    parser.add_argument("--confirms", type=int, default=15000, help="prepared sessions for the confirm phases")
    parser.add_argument("--think", type=float, nargs=2, default=(0.5, 1.5), metavar=("MIN", "MAX"))
    args = parser.parse_args()

    claim_redis()
    create_database()
    server = None
    with tempfile.TemporaryDirectory(prefix="kelabooking-bench-") as directory:
        workdir = Path(directory)
        try:
            port = free_port()
            env = server_environment(port=port, workdir=workdir)
            os.environ.update(env)
            started = time.perf_counter()
            files = prepare(workdir=workdir, users=args.users, confirms=args.confirms, rounds=args.rounds)
            print(f"prepared {BENCH_DB} in {time.perf_counter() - started:.0f} s", flush=True)
            server = Server(env, workers=args.workers, log=workdir / "gunicorn.log")
            server.wait_ready()
            server.start_sampling()
            print(f"gunicorn at {server.url}, {args.workers} workers, pids {server.workers()}", flush=True)
            return run(args, server=server, files=files, workdir=workdir)
        except BaseException:
            if (workdir / "gunicorn.log").exists():
                print("gunicorn log (tail):\n" + (workdir / "gunicorn.log").read_text()[-3000:])
            raise
        finally:
            if server is not None:
                server.stop()
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            drop_database()
            release_redis()
            print(f"dropped {BENCH_DB}, flushed {REDIS_URL}, removed {directory}", flush=True)


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
            2,  # the sign-ins call the sandbox on the same server: a few at a time, as in real life
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
    for phase, user_class, seconds, env, spawn_rate in phases:
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
    time.sleep(1)  # one more memory sample after the load
    peaks_mb = {pid: kib * 1024 / 1e6 for pid, kib in server.peak_rss.items()}
    over_capacity, confirmed_in_phase = check_database()

    journey = results["journey"][0]
    journey_rows = [summarise(name, entry) for name, entry in sorted(journey.items())]
    journey_ok = sum(row["ok"] for row in journey_rows if row["name"] != "sign-in (whole flow)")
    journey_errors = sum(row["errors"] for row in journey_rows)
    floor_row = summarise_rounds("FLOOR", [result["FLOOR"] for result in results["floor"]])
    confirm_row = summarise_rounds("CONFIRM", [result["CONFIRM"] for result in results["confirm"]])
    journey_confirm = next(row for row in journey_rows if row["name"] == "book: CONFIRM")
    ratio = confirm_row["rps"] / floor_row["rps"] if floor_row["rps"] else 0.0
    peak = max(peaks_mb.values(), default=0.0)

    print_table(f"1. journey: {users} partners, think time {args.think[0]}–{args.think[1]} s", journey_rows)
    span = max(e["last"] for e in journey.values()) - min(e["first"] for e in journey.values())
    print(f"  all requests: {journey_ok} ok, {journey_errors} errors, {journey_ok / span:.1f} req/s over {span:.0f} s")
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
    print(f"\n  confirm / floor throughput: {ratio:.2f}")
    print(f"  slots over capacity: {over_capacity}; confirm phase: {confirm_row['ok']} confirms answered, ", end="")
    print(f"{confirmed_in_phase} bookings confirmed in the database")
    print("\n  CPU per request, ms: gunicorn workers + Locust + the rest (PostgreSQL, Redis, kernel) = machine")
    for phase, requests in (("journey", journey_ok), ("floor", floor_row["ok"]), ("confirm", confirm_row["ok"])):
        used = {part: seconds / max(requests, 1) * 1000 for part, seconds in cpu[phase].items()}
        rest = used["machine"] - used["gunicorn"] - used["locust"]
        print(f"    {phase:<8} {used['gunicorn']:6.2f} + {used['locust']:5.2f} + {rest:5.2f} = {used['machine']:6.2f}")
    print("\n5. gunicorn worker peak RSS (VmHWM), MB: " + ", ".join(f"{v:.1f}" for v in sorted(peaks_mb.values())))

    targets = [
        (f"confirm p95 ≤ {TARGET_CONFIRM_P95_MS} ms at {users} partners", journey_confirm["p95"] <= 50),
        ("confirm ≥ 40 % of the floor's throughput", ratio >= TARGET_CONFIRM_FLOOR_RATIO),
        (f"worker peak RSS ≤ {TARGET_WORKER_RSS_MB} MB", 0 < peak <= TARGET_WORKER_RSS_MB),
        ("no slot over capacity", over_capacity == 0),
        ("every answered confirm booked once", confirmed_in_phase == confirm_row["ok"]),
        ("no request failed", journey_errors + floor_row["errors"] + confirm_row["errors"] == 0),
    ]
    print("\ntargets:")
    for label, met in targets:
        print(f"  {'met    ' if met else 'MISSED '} {label}")
    return 0 if all(met for _label, met in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
