"""Where a request's time goes, inside gunicorn's workers: a middleware, first in the stack, that profiles every
request with pyinstrument (a statistical profiler) and counts its queries, then adds the time up by who spent it
(the layer: a middleware, the session, the view, the templates) and by what kind of work it was (waiting on the
database, the ORM, templates, crypto, logging). bench/settings.py installs it when BENCH_PROFILE_DIR is set; each
worker writes its sums to that directory as JSON (bench/profile_requests.py reads them).

The profile starts at the first middleware: Django's WSGI handler around it (building the request, the
request_started and request_finished signals) is outside it, and so is gunicorn.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from django.db import connection
from django.http import HttpRequest, HttpResponse
from pyinstrument import Profiler

# (substring of a frame's file path, name): the innermost match on a sample's stack names it.
LAYERS = [
    ("/django/contrib/sessions/", "session load and save"),
    ("/kelabooking/middleware.py", "our middleware"),
    ("/partners/middleware.py", "our middleware"),
    ("/django/contrib/auth/", "authentication (the user)"),
    ("/django/middleware/csrf.py", "CSRF"),
    ("/django/middleware/locale.py", "locale (LocaleMiddleware)"),
    ("/csp/", "CSP"),
    ("/django/template/", "templates"),
    ("/template_partials/", "templates"),
    ("/kelabooking/templatetags/", "templates"),
    ("/kelabooking/logging.py", "logging"),
    ("/logging/__init__.py", "logging"),
    ("/bookings/", "the view (ours)"),
    ("/partners/", "the view (ours)"),
    ("/registry/", "the view (ours)"),
    ("/kelabooking/", "the view (ours)"),
    ("/bench/urls.py", "the view (ours)"),
]
KINDS = [
    ("/psycopg/", "database: the driver and waiting for PostgreSQL"),
    ("/django/db/", "ORM: building queries, making objects"),
    ("/cryptography/", "crypto"),
    ("/kelabooking/crypto.py", "crypto"),
    ("/hmac.py", "crypto"),
    ("/django/core/signing.py", "session and cookie signing"),
    ("/django/template/", "template engine"),
    ("/template_partials/", "template engine"),
    ("/logging/", "logging"),
    ("/kelabooking/logging.py", "logging"),
    ("/django/utils/translation/", "translation"),
    ("/django/urls/", "URL resolving and reversing"),
]
INTERVAL_SECONDS = 0.0002
WRITE_EVERY = 25  # requests


def _classify(path: str, table: list[tuple[str, str]], current: str) -> str:
    for part, name in table:
        if part in path:
            return name
    return current


class _Sums:
    def __init__(self) -> None:
        self.requests: dict[str, dict] = defaultdict(
            lambda: {"n": 0, "ms": 0.0, "queries": 0, "query_ms": 0.0, "layers": defaultdict(float), "kinds": {}}
        )
        self.seen = 0

    def add(self, name: str, *, ms: float, queries: int, query_ms: float, root) -> None:
        entry = self.requests[name]
        entry["n"] += 1
        entry["ms"] += ms
        entry["queries"] += queries
        entry["query_ms"] += query_ms
        kinds = entry["kinds"]
        stack = [(root, "Django's request handling", "Python (other)")] if root is not None else []
        while stack:
            frame, layer, kind = stack.pop()
            path = frame.file_path or ""
            layer, kind = _classify(path, LAYERS, layer), _classify(path, KINDS, kind)
            own = frame.time - sum(child.time for child in frame.children)
            if own > 0:
                entry["layers"][layer] += own * 1000
                kinds[kind] = kinds.get(kind, 0.0) + own * 1000
            stack.extend((child, layer, kind) for child in frame.children)
        self.seen += 1

    def write(self, directory: Path) -> None:
        (directory / f"{os.getpid()}.json").write_text(json.dumps(self.requests))


class ProfilingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.directory = Path(os.environ["BENCH_PROFILE_DIR"])
        self.sums = _Sums()
        atexit.register(self.sums.write, self.directory)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        queries = {"n": 0, "seconds": 0.0}

        def count(execute, sql, params, many, context):
            began = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                queries["n"] += 1
                queries["seconds"] += time.perf_counter() - began

        profiler = Profiler(interval=INTERVAL_SECONDS, async_mode="disabled")
        began = time.perf_counter()
        profiler.start()
        with connection.execute_wrapper(count):
            response = self.get_response(request)
        profiler.stop()
        ms = (time.perf_counter() - began) * 1000
        match = request.resolver_match
        name = f"{request.method} {match.view_name if match else request.path}"
        self.sums.add(
            name,
            ms=ms,
            queries=queries["n"],
            query_ms=queries["seconds"] * 1000,
            root=profiler.last_session.root_frame(),
        )
        if self.sums.seen % WRITE_EVERY == 0:
            self.sums.write(self.directory)
        return response
