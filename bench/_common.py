"""Shared set-up for the benchmark scripts: a throw-away PostgreSQL database on 127.0.0.1 and Django pointed at it,
the acting context and signed-in sessions as the real steps leave them, and gunicorn on a free loopback port."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
from psycopg import sql

BENCH_DB = "kelabooking_bench"
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REDIS_URL = "redis://127.0.0.1:6379/13"
REDIS_SENTINEL = "kelabooking-bench:owner"
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
    bench generates key files of its own in the work tree (settings without these variables ignore them)."""
    import base64

    from cryptography.fernet import Fernet

    return {
        "IDENTITY_CODE_ENCRYPTION_KEYS": Fernet.generate_key().decode("ascii"),
        "IDENTITY_CODE_HMAC_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii"),
        "IDENTITY_CODE_GENERATE_KEYS": "0",
    }


def setup_django() -> None:
    """Point Django at the bench database, keep messages in memory, migrate."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "kelabooking.settings"
    os.environ.update(identity_code_keys())
    os.environ["DEBUG"] = "1"
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}"
    # Nothing leaves the process: e-mail and SMS in memory, Celery eager (no broker URL), no Redis cache.
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    os.environ["SMS_BACKEND"] = "kelabooking.sms.LocmemBackend"
    for name in ("CELERY_BROKER_URL", "REDIS_URL", "SMS_GATEWAY_URL"):
        os.environ.pop(name, None)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))

    import django
    from django.core.management import call_command

    django.setup()
    # Celery's eager task log lines would drown the figures (and cost time under the GIL).
    logging.disable(logging.INFO)
    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    print(f"migrated {BENCH_DB} in {time.perf_counter() - started:.1f} s", flush=True)


@contextlib.contextmanager
def bench_database(*, extra: tuple[str, ...] = ()) -> Iterator[None]:
    """Create the database (and the `extra` ones, named kelabooking_bench_*), set Django up on the first, and always
    drop them all at the end, also on error."""
    names = (BENCH_DB, *extra)
    assert all(name.startswith(BENCH_DB) for name in names), names
    for name in names:
        create_database(name)
    try:
        setup_django()
        yield
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        for name in names:
            drop_database(name)
        print(f"dropped {', '.join(names)}", flush=True)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


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
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / TICKS


def bench_backends() -> list[int]:
    """The PostgreSQL backends serving the bench databases (kelabooking_bench*)."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname LIKE %s", (BENCH_DB.replace("_", r"\_") + "%",)
        ).fetchall()
    return [pid for (pid,) in rows]


class MachineMeter:
    """The machine's CPU over an interval, split into the benchmark's own (this process and its waited-for children,
    the processes `pids()` names, e.g. gunicorn's, and the bench databases' PostgreSQL backends) and everyone
    else's: other people's tests share this machine, and their load shows in every latency measured here."""

    def __init__(self, pids: Any = None) -> None:
        self.pids = pids or list
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        pids = [*self.pids(), *bench_backends()]
        return {
            "wall": time.monotonic(),
            "machine": busy_seconds(),
            "self": own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime,
            "pids": {pid: cpu_seconds(pid) for pid in pids},
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


def print_targets(targets: list[tuple[str, bool]]) -> int:
    """Print each target as met or MISSED; the script's exit code (1 when any is missed)."""
    print("\ntargets:")
    for label, met in targets:
        print(f"  {'met    ' if met else 'MISSED '} {label}")
    return 0 if all(met for _label, met in targets) else 1


# --- Who acts: the acting context and signed-in sessions ----------------------------------------------------------


def temporary_identity_codes(count: int, *, first_birthday: dt.date) -> list[str]:
    """Valid personal identity codes with temporary individual numbers (900–999): nobody real."""
    from kelabooking.identity import temporary_identity_code

    return [temporary_identity_code(index, first_birthday=first_birthday) for index in range(count)]


# Partners and customers are made by these two functions only: they are the one place that knows how a person's
# identity code is written (customers go through the app's own service; partners as the Suomi.fi sign-in makes them).


def make_partner(identity_code: str, *, first_name: str = "Bench", last_name: str = "Partner") -> Any:
    """A partner caseworker as the Suomi.fi sign-in creates one (`partners.suomifi.SuomiFiBackend.create_user`): a
    random username, the identity code, no usable password."""
    import uuid

    from partners.models import User

    user = User(
        username=f"partner-{uuid.uuid4().hex[:20]}",
        identity_code=identity_code,
        first_name=first_name,
        last_name=last_name,
    )
    user.set_unusable_password()
    user.save()
    return user


def make_customers(
    identity_codes: list[str],
    *,
    organisation: Any,
    first_name: str = "Bench",
    last_name: str = "Customer",
    phone: str = "+358401110000",
    email: str = "",
) -> list[Any]:
    """Customers in Kela's register: each found or created by `customer_find_or_create`, as a partner's customer
    step does, then given the register's name and contact details (fields other than the identity code)."""
    from django.db import transaction

    from bookings.models import Customer
    from bookings.services import customer_find_or_create

    loader = _loader_partner()
    acting = acting_for(partner=loader, organisation=organisation, customer=None)
    customers = []
    with transaction.atomic():
        for code in identity_codes:
            customers.append(customer_find_or_create(acting=acting, identity_code=code))
        Customer.objects.filter(pk__in=[customer.pk for customer in customers]).update(
            source=Customer.Source.KELA_REGISTER, first_name=first_name, last_name=last_name, phone=phone, email=email
        )
    return list(Customer.objects.filter(pk__in=[customer.pk for customer in customers]).order_by("pk"))


_LOADERS: dict[str, Any] = {}  # database name -> its loader partner


def _loader_partner() -> Any:
    """The partner in whose (acting) name the bench's customers are opened: born 1 January 1900, nobody else is."""
    from django.db import connection

    database = connection.settings_dict["NAME"]
    if database not in _LOADERS:
        (code,) = temporary_identity_codes(1, first_birthday=dt.date(1900, 1, 1))
        _LOADERS[database] = make_partner(code, first_name="Bench", last_name="Loader")
    return _LOADERS[database]


def acting_for(*, partner: Any, organisation: Any, customer: Any) -> Any:
    """The acting context a view hands the services for a partner past the terms, with `customer` locked (None: no
    customer yet)."""
    from kelabooking import clock
    from partners.context import ActingContext, RequestMeta

    return ActingContext(
        user=partner,
        organisation_business_id=organisation.business_id,
        organisation_name=organisation.name,
        terms_accepted_at=clock.now().isoformat(),
        customer_id=customer.pk if customer is not None else None,
        meta=RequestMeta(request_id="bench", ip_address="127.0.0.1"),
    )


def signed_in_session(*, partner: Any, organisation: Any, customer: Any, draft: dict | None = None) -> dict:
    """A partner's session data as the real steps leave it: signed in, the organisation chosen, the terms accepted,
    the customer locked, and `draft` (the booking draft) when given."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    from partners import context
    from partners.middleware import LAST_SEEN, LOGIN_AT

    now = time.time()
    data = {
        SESSION_KEY: str(partner.pk),
        BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0],
        HASH_SESSION_KEY: partner.get_session_auth_hash(),
        LOGIN_AT: now,
        LAST_SEEN: now,
    }
    # The acting context's own steps write it, so its format stays theirs alone.
    request = SimpleNamespace(session=data, user=partner, META={"REMOTE_ADDR": "127.0.0.1"})
    context.choose_organisation(request, business_id=organisation.business_id, name=organisation.name)
    context.accept_terms(request)
    context.lock_customer(request, customer)
    if draft is not None:
        context.booking_draft_save(request, **draft)
    return data


def save_sessions(sessions: list[dict]) -> list[dict[str, str]]:
    """Store session data in Django's session table in one INSERT (bench data loading); each one's cookies."""
    from django.conf import settings
    from django.contrib.sessions.models import Session
    from django.utils.crypto import get_random_string

    from kelabooking import clock

    expires = clock.now() + dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    rows, cookies = [], []
    for data in sessions:
        key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")  # the db backend's own key alphabet
        rows.append(Session(session_key=key, session_data=Session.objects.encode(data), expire_date=expires))
        cookies.append({"sessionid": key, "csrf": get_random_string(32)})
    Session.objects.bulk_create(rows, batch_size=2000)
    return cookies


def cookie_headers(cookies: dict[str, str]) -> dict[str, str]:
    """The headers of a request in that session: its cookies, and the CSRF token as htmx sends it."""
    return {"Cookie": f"sessionid={cookies['sessionid']}; csrftoken={cookies['csrf']}", "X-CSRFToken": cookies["csrf"]}


# --- Redis database 13: refuse one that someone else uses, flush ours at the end ------------------------------


def claim_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    if client.dbsize() and not client.exists(REDIS_SENTINEL):
        raise SystemExit(f"{REDIS_URL} holds keys that are not the benchmark's: refusing to use (and flush) it")
    client.flushdb()
    client.set(REDIS_SENTINEL, Path(sys.argv[0]).name)


def release_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


# --- gunicorn and its workers' memory -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_environment(*, port: int, workdir: Path) -> dict[str, str]:
    """Production's settings (bench/settings.py) on the bench database and Redis database 13, on 127.0.0.1 only."""
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
        **identity_code_keys(),
    }


class Server:
    """gunicorn with kelabooking/gunicorn.conf.py, never recycling a worker, sampling each worker's peak RSS."""

    def __init__(self, env: dict[str, str], *, workers: int, log: Path, threads: int = 1) -> None:
        self.url = f"http://{env['GUNICORN_BIND']}"
        self.log = log.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own venv's gunicorn, fixed arguments
            [BIN / "gunicorn", "-c", "kelabooking/gunicorn.conf.py", "--workers", str(workers), "--max-requests", "0"]
            + ["--threads", str(threads), "kelabooking.wsgi"],
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

    def peaks_mb(self) -> list[float]:
        return sorted(kib * 1024 / 1e6 for kib in self.peak_rss.values())

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


def prepare_server_database(*, sign_in: bool = True) -> None:
    """Migrate the bench database and collect the static files, with the server's settings (already in os.environ);
    with `sign_in`, generate the OIDC keys the sign-ins need."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    if not sign_in:
        return

    from partners import keys

    # Generated once here, so the workers only read them.
    keys.signing_key(), keys.encryption_key()
    call_command("sandbox_keys")


def vacuum_analyze() -> None:
    """As bench/growth.py does: otherwise autovacuum wakes up for the freshly written rows in the middle of the
    measured phases (autovacuum is off on this machine, but not everywhere)."""
    from django.db import connection, connections

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    connections.close_all()


@contextlib.contextmanager
def served(*, workers: int, threads: int = 1) -> Iterator[tuple[dict[str, str], Path, Any]]:
    """Redis database 13 claimed, the bench database created, the environment set, a temporary directory; yields
    (environment, directory, start) where `start()` starts gunicorn once the data are loaded. Afterwards gunicorn is
    stopped, the database dropped, Redis flushed and the directory removed, also on error."""
    import tempfile

    claim_redis()
    create_database()
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="kelabooking-bench-") as directory:
        workdir = Path(directory)
        try:
            env = server_environment(port=free_port(), workdir=workdir)
            os.environ.update(env)

            def start() -> Server:
                server = Server(env, workers=workers, threads=threads, log=workdir / "gunicorn.log")
                servers.append(server)
                server.wait_ready()
                server.start_sampling()
                print(f"gunicorn at {server.url}, {workers} workers x {threads} threads, pids {server.workers()}")
                return server

            yield env, workdir, start
        except BaseException:
            if (workdir / "gunicorn.log").exists():
                print("gunicorn log (tail):\n" + (workdir / "gunicorn.log").read_text()[-3000:])
            raise
        finally:
            for server in servers:
                server.stop()
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            drop_database()
            release_redis()
            print(f"dropped {BENCH_DB}, flushed {REDIS_URL}, removed {directory}", flush=True)
