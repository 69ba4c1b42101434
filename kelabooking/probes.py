"""What the orchestrator and Prometheus ask of a web process: `/healthz` (the process answers), `/readyz` (it can serve:
database and cache reachable, every migration applied) and `/metrics` (kelabooking/metrics.py).

`ProbeMiddleware`, first in MIDDLEWARE, answers the three before anything else runs: a kubelet or Prometheus asks by the
pod's address, which ALLOWED_HOSTS does not list, over plain HTTP, which SECURE_SSL_REDIRECT would redirect; and a
probe every few seconds should open no session, write no log line and cost next to nothing.

With METRICS_PORT set, gunicorn listens on that port too (kelabooking/gunicorn.conf.py), and the two ports keep apart:
`/metrics` is answered there and only there, and nothing else is. So the network can let Prometheus reach the metrics
port alone, and nobody but the ingress reaches the pages' port, whose X-Forwarded-For names the client.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.urls import resolve

PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_migrations_applied = False


def database_reachable() -> None:
    """A trivial query on the default connection (the one place outside migrations that opens a cursor)."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")


def cache_reachable() -> None:
    """Set, read back and delete a key of this process's own (two processes never race for one key)."""
    key = f"kelabooking:readyz:{socket.gethostname()}:{os.getpid()}"
    value = os.urandom(8).hex()
    cache.set(key, value, timeout=30)
    kept = cache.get(key)
    cache.delete(key)
    if kept != value:
        raise RuntimeError("the cache did not keep a value")


def migrations_applied() -> None:
    """No migration left to apply. Reading the migration files is the dear part: once they are all applied, a process
    never asks again (a later deployment starts new processes)."""
    global _migrations_applied
    if _migrations_applied:
        return
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise RuntimeError("migrations not applied")
    _migrations_applied = True


READINESS_CHECKS: dict[str, Callable[[], None]] = {
    "database": database_reachable,
    "cache": cache_reachable,
    "migrations": migrations_applied,
}


def readiness() -> dict[str, str]:
    """Each check's outcome, "ok" or "failed"; the migrations are only asked about on a reachable database."""
    outcome: dict[str, str] = {}
    for name, check in READINESS_CHECKS.items():
        if name == "migrations" and outcome.get("database") != "ok":
            outcome[name] = "unknown"
            continue
        try:
            check()
        except Exception:
            outcome[name] = "failed"
        else:
            outcome[name] = "ok"
    return outcome


def on_metrics_port(request: HttpRequest) -> bool:
    """Whether the request came in on METRICS_PORT (gunicorn gives the listening socket's port as SERVER_PORT)."""
    return bool(settings.METRICS_PORT) and request.META.get("SERVER_PORT") == str(settings.METRICS_PORT)


class ProbeMiddleware:
    """Answer /healthz, /readyz and /metrics before host validation, the HTTPS redirect, sessions and logging; with
    METRICS_PORT, /metrics on that port alone and nothing else there."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.METRICS_PORT and on_metrics_port(request) != (request.path_info == "/metrics"):
            return HttpResponseNotFound("not found", content_type="text/plain")
        if request.path_info in PROBE_PATHS:
            request.resolver_match = match = resolve(request.path_info)  # the views in kelabooking/views.py
            return match.func(request, *match.args, **match.kwargs)
        return self.get_response(request)
