"""Shared set-up for the benchmark scripts: a throw-away PostgreSQL database on 127.0.0.1 and Django pointed at it,
partners, customers and their signed-in sessions (the tests' own helpers, tests/acting.py), gunicorn on a free
loopback port (the fault drills' process handling, tests/drills.py), the one overbooking check, and how busy the
machine was."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
import math
import os
import resource
import secrets
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.drills import Processes, Started, claim_redis, free_port, start_gunicorn  # noqa: E402

# Another name, and another Redis database, let two runs share the machine (BENCH_DB must start kelabooking_bench).
BENCH_DB = os.environ.get("BENCH_DB", "kelabooking_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
BIN = Path(sys.executable).parent
# The organisation every simulated partner acts for (bench/settings.py gives typed partners its mandate).
ORGANISATION = ("0201256-6", "Helsingin kaupunki")


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as connection:
        connection.execute(statement)


def drop_database(name: str = BENCH_DB) -> None:
    # WITH (FORCE) ends any connection a crashed run left behind (PostgreSQL 13+).
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create_database(name: str = BENCH_DB) -> None:
    drop_database(name)
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def identity_code_keys() -> dict[str, str]:
    """Fresh keys for identity codes at rest (kelabooking/crypto.py) for this run only, so that no process of the
    bench generates key files of its own in the work tree."""
    from cryptography.fernet import Fernet

    return {
        "IDENTITY_CODE_ENCRYPTION_KEYS": Fernet.generate_key().decode("ascii"),
        "IDENTITY_CODE_HMAC_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii"),
        "IDENTITY_CODE_GENERATE_KEYS": "0",
    }


@contextlib.contextmanager
def bench_database(*, extra: tuple[str, ...] = ()) -> Iterator[None]:
    """Create the database (and the `extra` ones, named kelabooking_bench_*) and migrate the first, with Django
    pointed at it, e-mail and SMS in memory and Celery eager (nothing leaves the process); always drop them all at
    the end, also on error."""
    names = (BENCH_DB, *extra)
    assert all(name.startswith("kelabooking_bench") for name in names), names
    for name in names:
        create_database(name)
    os.environ.update(
        identity_code_keys(),
        DJANGO_SETTINGS_MODULE="kelabooking.settings",
        DEBUG="1",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        SMS_BACKEND="kelabooking.sms.LocmemBackend",
    )
    for name in ("CELERY_BROKER_URL", "REDIS_URL", "SMS_GATEWAY_URL"):
        os.environ.pop(name, None)
    try:
        started = time.perf_counter()
        migrate()
        logging.disable(logging.INFO)  # Celery's eager task log lines would drown the figures and cost time
        print(f"migrated {BENCH_DB} in {time.perf_counter() - started:.1f} s", flush=True)
        yield
    finally:
        close_connections()
        for name in names:
            drop_database(name)
        print(f"dropped {', '.join(names)}", flush=True)


def migrate(*, static: bool = False) -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    if static:
        call_command("collectstatic", interactive=False, verbosity=0)


def close_connections() -> None:
    with contextlib.suppress(Exception):
        from django.db import connections

        connections.close_all()


def vacuum_analyze() -> None:
    """Otherwise autovacuum wakes up for the freshly written rows in the middle of the measured phases (it is off on
    this machine, but not everywhere)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    close_connections()


# --- Figures ----------------------------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered)))) - 1]


def percentiles(values: list[float], *points: float, digits: int = 1) -> str:
    return " / ".join(f"{percentile(values, point):.{digits}f}" for point in points or (50, 95, 99))


def print_rows(title: str, rows: list[tuple[str, object]]) -> None:
    width = max(len(name) for name, _value in rows)
    print(f"\n{title}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def print_targets(targets: list[tuple[str, bool]]) -> int:
    """Print each target as met or MISSED; the script's exit code (1 when any is missed)."""
    print("\ntargets:")
    for label, met in targets:
        print(f"  {'met    ' if met else 'MISSED '} {label}")
    return 0 if all(met for _label, met in targets) else 1


def overbookings(**slots: Any) -> int:
    """The places booked beyond capacity, summed over the slots that `slots` filters, by a fresh connection after
    every client has gone: the one check that the capacity held."""
    from django.db.models import Count, Q

    from bookings.models import Booking, Slot

    close_connections()
    confirmed = Count("bookings", filter=Q(bookings__status=Booking.Status.CONFIRMED))
    per_slot = Slot.objects.filter(**slots).annotate(confirmed=confirmed).values_list("confirmed", "capacity")
    excess = sum(max(0, booked - capacity) for booked, capacity in per_slot)
    close_connections()
    return excess


# --- How busy the machine was, and with whose work ------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (utime + stime), 0 when it has gone."""
    with contextlib.suppress(OSError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    return 0.0


def busy_seconds() -> float:
    """CPU time spent by the whole machine, all cores (/proc/stat: everything but idle and iowait)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICKS


def bench_backends() -> list[int]:
    """The PostgreSQL backends serving the bench databases (kelabooking_bench*)."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as connection:
        like = BENCH_DB.replace("_", r"\_") + "%"
        return [pid for (pid,) in connection.execute("SELECT pid FROM pg_stat_activity WHERE datname LIKE %s", [like])]


class MachineMeter:
    """The machine's CPU over an interval, split into the benchmark's own (this process and its waited-for children,
    the processes `pids()` names, e.g. gunicorn's, and the bench databases' PostgreSQL backends) and everyone
    else's: other people's tests share this machine, and their load shows in every latency measured here."""

    def __init__(self, pids: Any = None) -> None:
        self.pids = pids or list
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "wall": time.monotonic(),
            "machine": busy_seconds(),
            "self": own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime,
            "pids": {pid: cpu_seconds(pid) for pid in [*self.pids(), *bench_backends()]},
        }

    def read(self) -> dict[str, float]:
        """Since the meter started: wall seconds, and CPU seconds of the machine, of ours and of the others."""
        after = self.snapshot()
        ours = after["self"] - self.before["self"]
        ours += sum(cpu - self.before["pids"].get(pid, 0.0) for pid, cpu in after["pids"].items())
        machine = after["machine"] - self.before["machine"]
        return {"wall": after["wall"] - self.before["wall"], "machine": machine, "ours": ours, "others": machine - ours}

    def describe(self) -> str:
        r = self.read()
        capacity = max(r["wall"] * CORES, 1e-9)
        return (
            f"machine {r['machine'] / capacity:.0%} busy over {r['wall']:.0f} s: the benchmark"
            f" {r['ours'] / capacity:.0%}, other processes {max(r['others'], 0) / capacity:.0%} of the {CORES} cores"
        )


# --- Who acts: partners, customers and their signed-in sessions ---------------------------------------------------
# Partners and customers are made here only: the one place that knows how a person's identity code is written
# (customers through the app's own service, partners as the Suomi.fi sign-in makes them).


def temporary_identity_codes(count: int, *, first_birthday: dt.date) -> list[str]:
    """Valid personal identity codes with temporary individual numbers (900–999): nobody real."""
    from kelabooking.identity import temporary_identity_code

    return [temporary_identity_code(index, first_birthday=first_birthday) for index in range(count)]


def make_partners(codes: list[str], **names: str) -> list[Any]:
    """Partner caseworkers as the Suomi.fi sign-in creates them (`SuomiFiBackend.create_user`): a random username,
    the identity code, no usable password."""
    from django.db import transaction

    from partners.models import User

    fields = {"first_name": "Bench", "last_name": "Partner"} | names
    partners = []
    with transaction.atomic():
        for code in codes:
            user = User(username=f"partner-{uuid.uuid4().hex[:20]}", identity_code=code, **fields)
            user.set_unusable_password()
            user.save()
            partners.append(user)
    return partners


def make_customers(codes: list[str], *, organisation: Any, **register: str) -> list[Any]:
    """Customers in Kela's register: each found or created by `customer_find_or_create`, as a partner's customer
    step does, then given the register's name and contact details (`register`: fields other than the code)."""
    from django.db import connection, transaction

    from bookings.models import Customer
    from bookings.services import customer_find_or_create
    from tests.acting import acting_for

    database = connection.settings_dict["NAME"]
    if database not in _LOADERS:  # born 1 January 1900: nobody else is; made once per database
        from partners.models import User

        (code,) = temporary_identity_codes(1, first_birthday=dt.date(1900, 1, 1))
        loader = User.objects.filter(first_name="Bench", last_name="Loader").first()
        _LOADERS[database] = loader or make_partners([code], last_name="Loader")[0]
    acting = acting_for(_LOADERS[database], organisation=organisation, request_id="bench")
    fields = {"first_name": "Bench", "last_name": "Customer", "phone": "+358401110000", "email": ""} | register
    with transaction.atomic():
        ids = [customer_find_or_create(acting=acting, identity_code=code).pk for code in codes]
        Customer.objects.filter(pk__in=ids).update(source=Customer.Source.KELA_REGISTER, **fields)
    return list(Customer.objects.filter(pk__in=ids).order_by("pk"))


_LOADERS: dict[str, Any] = {}  # database name -> the partner in whose acting name its customers are opened


def make_slots(line: Any, starts: list[dt.datetime], *, capacity: int) -> list[int]:
    """45-minute Finnish slots of `line` at `starts`; their ids."""
    from bookings.models import Slot

    slots = Slot.objects.bulk_create(
        Slot(service_line=line, language="fi", starts_at=s, ends_at=s + dt.timedelta(minutes=45), capacity=capacity)
        for s in starts
    )
    return [slot.pk for slot in slots]


def signed_in_sessions(partners: list, customers: list, *, organisation: Any, drafts: list | None = None) -> list:
    """Each partner signed in, acting for `organisation` past the terms with its customer locked and its draft (the
    tests' own steps, tests/acting.py), stored in Django's session table in one INSERT; the cookies of each."""
    from django.conf import settings
    from django.contrib.sessions.models import Session
    from django.db import transaction
    from django.utils.crypto import get_random_string

    from kelabooking import clock
    from tests.acting import signed_in_session

    drafts = drafts or [None] * len(partners)
    with transaction.atomic():  # the logins' last_login updates
        sessions = [
            signed_in_session(partner, organisation=organisation, customer=customer, draft=draft)
            for partner, customer, draft in zip(partners, customers, drafts, strict=True)
        ]
    expires = clock.now() + dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    cookies = [
        {"sessionid": get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789"), "csrf": get_random_string(32)}
        for _session in sessions
    ]
    Session.objects.bulk_create(
        [
            Session(session_key=cookie["sessionid"], session_data=Session.objects.encode(data), expire_date=expires)
            for cookie, data in zip(cookies, sessions, strict=True)
        ],
        batch_size=2000,
    )
    return cookies


def cookie_headers(cookies: dict[str, str]) -> dict[str, str]:
    """The headers of a request in that session: its cookies, and the CSRF token as htmx sends it."""
    return {"Cookie": f"sessionid={cookies['sessionid']}; csrftoken={cookies['csrf']}", "X-CSRFToken": cookies["csrf"]}


# --- gunicorn and its workers' memory -------------------------------------------------------------------------


class Server:
    """gunicorn with kelabooking/gunicorn.conf.py (tests/drills.py starts and stops it), never recycling a worker,
    sampling each worker's peak RSS (VmHWM: the kernel's own high-water mark) every half second."""

    def __init__(self, started: Started, url: str) -> None:
        self.started, self.url, self.process = started, url, started.process
        self.peak_rss: dict[int, int] = {}
        self.stopped = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def workers(self) -> list[int]:
        pid = self.process.pid
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def _sample(self) -> None:
        while not self.stopped.wait(0.5):
            with contextlib.suppress(OSError, StopIteration):  # a worker (or the server) that has just gone
                for pid in self.workers():
                    status = Path(f"/proc/{pid}/status").read_text().splitlines()
                    peak = int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
                    self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), peak)

    def peaks_mb(self) -> list[float]:
        return sorted(kib * 1024 / 1e6 for kib in self.peak_rss.values())


@contextlib.contextmanager
def served(*, workers: int, threads: int = 1, sign_in: bool = True) -> Iterator[tuple[Path, Any]]:
    """Redis database 13 claimed, the bench database created and migrated with production's settings
    (bench/settings.py) in os.environ, a temporary directory; yields (directory, start) where `start()` starts
    gunicorn once the data are loaded. With `sign_in`, the OIDC keys the sign-ins need are made first. Afterwards
    gunicorn is stopped, the database dropped, Redis flushed and the directory removed, also on error."""
    try:
        redis = claim_redis(REDIS_URL, owner=Path(sys.argv[0]).name)
    except ValueError as error:
        raise SystemExit(f"{error} (BENCH_REDIS_URL names another)") from error
    create_database()
    with tempfile.TemporaryDirectory(prefix="kelabooking-bench-") as directory:
        workdir = Path(directory)
        processes = Processes(workdir=workdir)
        port = free_port()
        os.environ.update(
            identity_code_keys(),
            DJANGO_SETTINGS_MODULE="bench.settings",
            DEBUG="0",
            SECRET_KEY=secrets.token_urlsafe(50),
            ALLOWED_HOSTS="127.0.0.1",
            DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
            DATABASE_OWNER_SERVES="1",  # one role for the bench's own writes and the servers (kelabooking.E030)
            REDIS_URL=REDIS_URL,
            CELERY_BROKER_URL=REDIS_URL,
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
            SMS_BACKEND="kelabooking.sms.LocmemBackend",
            SUOMIFI_SANDBOX="1",
            SUOMIFI_SANDBOX_PUBLIC_DEMO="1",
            SUOMIFI_SANDBOX_BASE_URL=f"http://127.0.0.1:{port}",
            OIDC_RP_KEY_DIR=str(workdir / "keys"),
            OIDC_RP_GENERATE_KEYS="1",
            STATIC_ROOT=str(workdir / "static"),
            GUNICORN_BIND=f"127.0.0.1:{port}",
            PYTHONPATH=str(ROOT),
        )

        def start(settings_module: str = "") -> Server:
            """gunicorn with bench/settings.py on the port the sandbox's addresses name, or, with `settings_module`
            (bench/settings_bare.py, say), another gunicorn with those settings on a port of its own."""
            options = ("--workers", str(workers), "--threads", str(threads), "--max-requests", "0")
            env, bind = dict(os.environ), port
            if settings_module:
                bind = free_port()
                env |= {"DJANGO_SETTINGS_MODULE": settings_module, "GUNICORN_BIND": f"127.0.0.1:{bind}"}
            started = start_gunicorn(processes, env=env, options=options)
            server = Server(started, f"http://127.0.0.1:{bind}")
            servers.append(server)
            print(f"gunicorn at {server.url}, {workers} workers x {threads} threads, pids {server.workers()}")
            return server

        servers: list[Server] = []
        try:
            migrate(static=True)
            if sign_in:  # made once here, so that the workers only read them
                from django.core.management import call_command

                from partners import keys

                keys.signing_key(), keys.encryption_key()
                call_command("sandbox_keys")
            yield workdir, start
        except BaseException:
            for started in processes.started:
                print(f"{started.name} log (tail):\n{started.log_tail()}")
            raise
        finally:
            for server in servers:
                server.stopped.set()
            processes.stop_all()
            close_connections()
            drop_database()
            redis.flushdb()
            print(f"dropped {BENCH_DB}, flushed {REDIS_URL}, removed {directory}", flush=True)
