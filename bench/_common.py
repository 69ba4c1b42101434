"""Shared set-up for the benchmark scripts: a throw-away PostgreSQL database on 127.0.0.1 and Django pointed at it."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

BENCH_DB = "kelabooking_bench"
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
ROOT = Path(__file__).resolve().parent.parent


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
