"""Shared set-up for the benchmark scripts: a throw-away PostgreSQL database on 127.0.0.1 and Django pointed at it,
the acting context and signed-in sessions as the real steps leave them, and gunicorn on a free loopback port."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
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


def drop_database() -> None:
    # WITH (FORCE) ends any connection a crashed run left behind (PostgreSQL 13+).
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))


def create_database() -> None:
    drop_database()
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))


def setup_django() -> None:
    """Point Django at the bench database, keep messages in memory, migrate."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "kelabooking.settings"
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
def bench_database() -> Iterator[None]:
    """Create the database, set Django up, and always drop the database at the end, also on error."""
    create_database()
    try:
        setup_django()
        yield
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        drop_database()
        print(f"dropped {BENCH_DB}", flush=True)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def print_targets(targets: list[tuple[str, bool]]) -> int:
    """Print each target as met or MISSED; the script's exit code (1 when any is missed)."""
    print("\ntargets:")
    for label, met in targets:
        print(f"  {'met    ' if met else 'MISSED '} {label}")
    return 0 if all(met for _label, met in targets) else 1


# --- Who acts: the acting context and signed-in sessions ----------------------------------------------------------


def temporary_identity_codes(count: int, *, first_birthday: dt.date) -> list[str]:
    """Valid personal identity codes with temporary individual numbers (900–999): nobody real."""
    from partners.sandbox.people import temporary_identity_code

    return [temporary_identity_code(index, first_birthday=first_birthday) for index in range(count)]


def acting_for(*, partner: Any, organisation: Any, customer: Any) -> Any:
    """The acting context a view hands the services for a partner past the terms with `customer` locked."""
    from kelabooking import clock
    from partners.context import ActingContext, RequestMeta

    return ActingContext(
        user=partner,
        organisation_business_id=organisation.business_id,
        organisation_name=organisation.name,
        terms_accepted_at=clock.now().isoformat(),
        customer_id=customer.pk,
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
        data[context.DRAFT_KEY] = draft
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


def prepare_server_database() -> None:
    """Migrate the bench database and collect the static files, with the server's settings (already in os.environ)."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)

    from partners import keys
    from partners.sandbox import oidc as sandbox_oidc

    # Generated once here, so the workers only read them.
    keys.signing_key(), keys.encryption_key(), sandbox_oidc.op_signing_key()


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
