"""Where a booking confirm's CPU goes, part by part, beside the floor's: in-process, through Django's WSGI handler.

Run: .venv/bin/python bench/confirm_parts.py [--requests 600]

The same data, settings and prepared sessions as bench/http_journey.py (PostgreSQL, Redis as broker, DEBUG off), but
no HTTP server and no load generator: the floor and the confirm are called in turns of 20 requests each in this
process, so that a change in the speed of this shared machine falls on both alike. For each it reports this process's
CPU time (time.process_time) and the PostgreSQL backend's (/proc), per request; for the confirm it also times the
parts named in docs/benchmarks.md §3 by wrapping the functions that do them. Drops its database and flushes Redis
database 13 afterwards, also on error.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import http_journey  # noqa: E402
from bench._common import create_database, drop_database  # noqa: E402

TURN = 20
# (label, module, attribute): the parts of a confirm request, timed where they run. Nested parts are subtracted from
# the parts that call them, so the rows add up to the whole request.
PARTS = [
    ("session and user (as for the floor)", "django.contrib.auth", "get_user"),
    ("booking transaction: lock, compare-and-swap, commit", "bookings.views", "booking_confirm"),
    ("messages: the outbox rows, one INSERT", "bookings.services.booking", "booking_messages_enqueue"),
    ("the nudge after commit (Redis about once a second)", "kelabooking.services", "_nudge"),
    ("audit event booking_confirmed", "bookings.views", "audit_event_record"),
    ("session saved without the draft", "kelabooking.sessions", "SessionStore.save"),
]
NESTED = {"booking_confirm": ("booking_messages_enqueue", "_nudge", "audit_event_record")}


class PartTimer:
    """Accumulates the process CPU time spent inside each wrapped function."""

    def __init__(self) -> None:
        self.spent: Counter[str] = Counter()

    def wrap(self, module_name: str, attribute: str) -> None:
        import importlib

        owner_name, _, name = attribute.rpartition(".")
        owner = importlib.import_module(module_name)
        if owner_name:
            owner = getattr(owner, owner_name)
        function = getattr(owner, name)

        @functools.wraps(function)
        def timed(*args, **kwargs):
            started = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.spent[name] += time.process_time() - started

        setattr(owner, name, timed)


def backend_cpu_seconds() -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return http_journey.cpu_seconds(cursor.fetchone()[0])


def wsgi_caller() -> Callable[[dict], str]:
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()

    def call(environ: dict) -> str:
        status = {}

        def start_response(value, headers, exc_info=None):
            status["value"] = value

        response = handler(environ, start_response)
        for _chunk in response:
            pass
        response.close()
        return status["value"]

    return call


def environ(method: str, path: str, session: dict, body: bytes = b"") -> dict:
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "HTTP_COOKIE": f"sessionid={session['sessionid']}; csrftoken={session['csrf']}",
        "HTTP_X_CSRFTOKEN": session["csrf"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600, help="timed requests of each kind")
    args = parser.parse_args()
    turns = max(1, args.requests // TURN)

    http_journey.claim_redis()
    create_database()
    with tempfile.TemporaryDirectory(prefix="kelabooking-bench-") as directory:
        try:
            workdir = Path(directory)
            os.environ.update(http_journey.server_environment(port=8000, workdir=workdir))
            warmup = 2 * TURN
            files = http_journey.prepare(workdir=workdir, users=16, confirms=turns * TURN + warmup, rounds=1)
            return measure(files, turns=turns, warmup=warmup)
        finally:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            drop_database()
            http_journey.release_redis()
            print(f"dropped the benchmark database, flushed {http_journey.REDIS_URL}, removed {directory}")


def measure(files: dict[str, Path], *, turns: int, warmup: int) -> int:
    import logging

    logging.disable(logging.WARNING)  # gunicorn's access log is not part of this; nothing else logs per request
    timer = PartTimer()
    for _label, module, attribute in PARTS:
        timer.wrap(module, attribute)
    call = wsgi_caller()
    floor_sessions = json.loads(files["floor"].read_text())
    confirm_sessions = iter(json.loads(files["confirm-0"].read_text()))

    def floor(n: int) -> dict:
        return environ("GET", "/bench/floor/", floor_sessions[n % len(floor_sessions)])

    def confirm(_n: int) -> dict:
        session = next(confirm_sessions)
        return environ("POST", "/en/book/check/", session, f"idempotency_key={session['idempotency_key']}".encode())

    expected = {"floor": "200", "confirm": "302"}
    for kind, request in (("floor", floor), ("confirm", confirm)):
        for n in range(warmup if kind == "confirm" else TURN):
            call(request(n))
    totals = {kind: Counter() for kind in expected}
    for turn in range(turns):
        for kind, request in (("floor", floor), ("confirm", confirm)):
            timer.spent.clear()
            python, database = time.process_time(), backend_cpu_seconds()
            for n in range(TURN):
                status = call(request(turn * TURN + n))
                if not status.startswith(expected[kind]):
                    raise SystemExit(f"{kind} answered {status}")
            totals[kind]["python"] += time.process_time() - python
            totals[kind]["postgresql"] += backend_cpu_seconds() - database
            if kind == "confirm":
                totals[kind].update(timer.spent)
    report(totals, requests=turns * TURN)
    return 0


def report(totals: dict[str, Counter], *, requests: int) -> None:
    def ms(seconds: float) -> float:
        return seconds / requests * 1000

    floor, confirm = totals["floor"], totals["confirm"]
    print(f"\nCPU per request, ms, {requests} requests of each kind in turns of {TURN}")
    print(f"  {'':<56} {'floor':>8} {'confirm':>8}")
    for part in ("python", "postgresql"):
        print(f"  {'this process (Django)' if part == 'python' else 'PostgreSQL backend':<56} ", end="")
        print(f"{ms(floor[part]):8.2f} {ms(confirm[part]):8.2f}")
    floor_all, confirm_all = ms(floor["python"] + floor["postgresql"]), ms(confirm["python"] + confirm["postgresql"])
    print(f"  {'both':<56} {floor_all:8.2f} {confirm_all:8.2f}   confirm / floor = {confirm_all / floor_all:.2f}")
    print("\nthe confirm's Python, part by part, ms")
    spent = dict(confirm)
    for outer, inner in NESTED.items():
        spent[outer] -= sum(spent[name] for name in inner)
    named = 0.0
    for label, _module, attribute in PARTS:
        value = ms(spent[attribute.rpartition(".")[2]])
        named += value
        print(f"  {label:<56} {value:8.2f}")
    print(f"  {'everything else: middleware, view, form, redirect':<56} {ms(confirm['python']) - named:8.2f}")


if __name__ == "__main__":
    sys.exit(main())
