"""Prometheus metrics: the shared helper every app defines its metrics with, the figures read at scrape time, the
request-latency middleware and the exposition (`/metrics` on web, a port of its own on a Celery worker).

Counters and histograms live in the process that changes them (a web worker, a Celery pool process). Under gunicorn and
Celery's prefork pool each process keeps its own, so with PROMETHEUS_MULTIPROC_DIR set (an empty directory per
container, writable) prometheus-client keeps them in files there and the exposition adds them up; gunicorn's
`child_exit` and Celery's `worker_process_shutdown` mark a finished process dead (there are no live gauges, only
counters and histograms, so files a restarted container finds only carry its counts over). Without it (the embedded
default, the tests) the default registry of the one process is exported.

Figures that need the database or the cache (the outbox queue, slot utilisation, the periodic tasks' last runs) are
never kept per request: a collector registered with `scrape_collector_register` computes them when Prometheus scrapes,
with a few aggregate queries. Apps register theirs in `AppConfig.ready()`; `kelabooking` imports no app.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

logger = logging.getLogger(__name__)

PREFIX = "kelabooking_"
# Seconds: from a cached page (a few ms) to a request that waits for a slow provider (OIDC_TIMEOUT is 10 s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def multiprocess_dir_prepare(*, empty: bool = False) -> None:
    """Make PROMETHEUS_MULTIPROC_DIR when it is set and missing: a container's tmpfs starts without it, and
    prometheus-client would fail the first count of a process (a request, a task, a command run beside the server).
    With `empty` (gunicorn's and a Celery worker's start, the container's first process), remove the files an earlier
    run left: an emptyDir outlives a restarted container, and a new process with an old one's pid would go on from its
    counts. Only prometheus-client's own files (`*.db`) are removed."""
    directory = multiprocess_dir()
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    if empty:
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)


# --- The shared helper: every metric of the project is named kelabooking_* and made here -------------------------


def counter(name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
    return Counter(PREFIX + name, documentation, labelnames)


def histogram(
    name: str, documentation: str, labelnames: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS
) -> Histogram:
    return Histogram(PREFIX + name, documentation, labelnames, buckets=buckets)


class ScrapeCollector(Protocol):
    def collect(self) -> Iterable[Metric]: ...


_scrape_collectors: list[ScrapeCollector] = []


def scrape_collector_register(collector: ScrapeCollector) -> None:
    """Compute `collector`'s figures at every scrape of /metrics (registering it again changes nothing)."""
    if collector not in _scrape_collectors:
        _scrape_collectors.append(collector)


# --- kelabooking's own metrics --------------------------------------------------------------------------------------

REQUEST_LATENCY = histogram(
    "http_request_duration_seconds", "Time to answer a request, by the view that answered it.", ["view", "method"]
)
RESPONSES = counter(
    "http_responses_total", "Responses, by view and status class (2xx, 3xx, 4xx, 5xx).", ["view", "status"]
)
OUTBOX_SEND_ATTEMPTS = counter(
    "outbox_send_attempts_total",
    "Attempts to send an outbox message, by channel and outcome: sent, retry (failed, tried again later) or given_up "
    "(failed for good: a permanent error or MESSAGE_MAX_ATTEMPTS reached).",
    ["channel", "outcome"],
)
INTEGRATION_LATENCY = histogram(
    "integration_request_duration_seconds",
    "Time of a call to an outside service (valtuudet, prh), by operation, whatever its outcome.",
    ["service", "operation"],
)
INTEGRATION_ERRORS = counter(
    "integration_errors_total",
    "Calls to an outside service that failed (unreachable, an error status, an answer that cannot be read).",
    ["service", "operation"],
)


@contextmanager
def integration_call(service: str, operation: str) -> Iterator[None]:
    """Time a call to an outside service, and count it as an error when it raises."""
    started = time.perf_counter()
    try:
        yield
    except Exception:
        INTEGRATION_ERRORS.labels(service, operation).inc()
        raise
    finally:
        INTEGRATION_LATENCY.labels(service, operation).observe(time.perf_counter() - started)


# --- The figures read at scrape time ----------------------------------------------------------------------------


class OutboxCollector:
    """Messages waiting in the outbox, and how long the oldest has waited, by channel: one grouped query on the
    (status, next_attempt_at) index's status."""

    def collect(self) -> Iterable[Metric]:
        from django.db.models import Count, Min

        from kelabooking import clock
        from kelabooking.models import Message

        pending = GaugeMetricFamily(
            PREFIX + "outbox_pending_messages",
            "Outbox messages not yet sent nor given up, by channel.",
            labels=["channel"],
        )
        oldest = GaugeMetricFamily(
            PREFIX + "outbox_oldest_pending_age_seconds",
            "How long the oldest pending outbox message has waited since it was queued, by channel (0 when none).",
            labels=["channel"],
        )
        rows = {
            row["channel"]: row
            for row in Message.objects.filter(status=Message.Status.PENDING)
            .order_by()
            .values("channel")
            .annotate(count=Count("pk"), oldest=Min("created_at"))
        }
        now = clock.now()
        for channel in Message.Channel.values:
            row = rows.get(channel)
            pending.add_metric([channel], row["count"] if row else 0)
            oldest.add_metric([channel], (now - row["oldest"]).total_seconds() if row else 0)
        yield pending
        yield oldest


PERIODIC_RAN_KEY = "kelabooking:metrics:periodic-ran:{}"
BEAT_SENT_KEY = "kelabooking:metrics:beat-sent:{}"


class PeriodicTaskCollector:
    """When each entry of CELERY_BEAT_SCHEDULE was last sent by beat and last run by a worker (kelabooking/celery.py
    writes both to the shared cache, so any web process reports them, whichever worker ran the task)."""

    def collect(self) -> Iterable[Metric]:
        from django.core.cache import cache

        entries = list(settings.CELERY_BEAT_SCHEDULE)
        ran = GaugeMetricFamily(
            PREFIX + "periodic_task_last_run_timestamp_seconds",
            "Unix time a worker last started this periodic task (a CELERY_BEAT_SCHEDULE entry).",
            labels=["task"],
        )
        sent = GaugeMetricFamily(
            PREFIX + "beat_last_sent_timestamp_seconds",
            "Unix time beat last sent this periodic task (a CELERY_BEAT_SCHEDULE entry).",
            labels=["task"],
        )
        try:
            stored = cache.get_many(
                [PERIODIC_RAN_KEY.format(entry) for entry in entries]
                + [BEAT_SENT_KEY.format(entry) for entry in entries]
            )
        except Exception as error:  # the cache down: no figures rather than no scrape (readiness reports the cache)
            logger.warning("Periodic task timestamps unavailable: %s", type(error).__name__)
            return
        for entry in entries:
            if (value := stored.get(PERIODIC_RAN_KEY.format(entry))) is not None:
                ran.add_metric([entry], value)
            if (value := stored.get(BEAT_SENT_KEY.format(entry))) is not None:
                sent.add_metric([entry], value)
        yield ran
        yield sent


class ReadinessCollector:
    """/readyz's checks as gauges (1 passed, 0 failed), so that an alert sees a replica that is not ready."""

    def collect(self) -> Iterable[Metric]:
        from kelabooking.probes import readiness

        family = GaugeMetricFamily(
            PREFIX + "readiness_check_ok",
            "Whether /readyz's check passes in this web process: database, cache, migrations (1 yes, 0 no).",
            labels=["check"],
        )
        for check, outcome in readiness().items():
            family.add_metric([check], 1 if outcome == "ok" else 0)
        yield family


scrape_collector_register(ReadinessCollector())
scrape_collector_register(OutboxCollector())
scrape_collector_register(PeriodicTaskCollector())


# --- Exposition -------------------------------------------------------------------------------------------------


class _ScrapeTime:
    """The registered scrape-time collectors as one; one that fails leaves the others and the counters reported."""

    def collect(self) -> Iterable[Metric]:
        for collector in _scrape_collectors:
            try:
                yield from list(collector.collect())
            except Exception as error:  # the database down, say: /readyz and kelabooking_readiness_check_ok tell
                logger.warning("Metrics collector %s failed: %s", type(collector).__name__, type(error).__name__)


class _ThisProcess:
    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def exposition(*, scrape_time: bool = True) -> bytes:
    """The metrics in Prometheus' text format: every process's counters (this process's alone without
    PROMETHEUS_MULTIPROC_DIR), and with `scrape_time` the figures the registered collectors compute now."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        prometheus_multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    if scrape_time:
        registry.register(_ScrapeTime())
    return generate_latest(registry)


def scrape_authorised(authorization: str) -> bool:
    """Whether an Authorization header carries METRICS_TOKEN as a bearer token (compared in constant time)."""
    token = settings.METRICS_TOKEN
    scheme, _, given = authorization.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def mark_process_dead(pid: int) -> None:
    """gunicorn's `child_exit` and Celery's `worker_process_shutdown`: drop a finished process's live gauges."""
    if multiprocess_dir():
        prometheus_multiprocess.mark_process_dead(pid)


# --- Request latency by view ------------------------------------------------------------------------------------


class RequestMetricsMiddleware:
    """Time every request and count its response by the view that answered it (its URL name, never the path: paths
    carry references and bounded labels keep the series few). An observe and an increment; nothing else."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        view = (match.view_name or "unnamed") if match is not None else "unresolved"
        REQUEST_LATENCY.labels(view, request.method).observe(time.perf_counter() - started)
        RESPONSES.labels(view, f"{response.status_code // 100}xx").inc()
        return response


# --- A worker's own exposition ----------------------------------------------------------------------------------


def _worker_metrics_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    if environ.get("PATH_INFO") != "/metrics" or not settings.METRICS_TOKEN:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    if not scrape_authorised(environ.get("HTTP_AUTHORIZATION", "")):
        start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
        return [b"unauthorized\n"]
    body = exposition(scrape_time=False)  # the queue and the heartbeats are web's to report, once
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
    return [body]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class _ThreadingServer(WSGIServer):
    daemon_threads = True


def worker_metrics_serve(port: int, address: str = "0.0.0.0") -> WSGIServer:  # noqa: S104 - scraped from outside
    """Serve a Celery worker's metrics on `port` (GET /metrics with the bearer token), in a daemon thread."""
    server = make_server(address, port, _worker_metrics_app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
