"""gunicorn settings for the web container; each can be overridden with GUNICORN_CMD_ARGS."""

from __future__ import annotations

import os

from gunicorn.util import parse_address

from kelabooking.logging import install_mask

bind = [os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")]


def _metrics_bind(pages: str, port: int) -> str:
    """The metrics' own listener: `port` on the pages' host. Only beside a TCP address: on a unix socket or a file
    descriptor the port of a request is whatever its Host header says, so the ports could not be kept apart."""
    address = parse_address(pages)
    if not isinstance(address, tuple) or port == address[1]:
        raise RuntimeError(f"METRICS_PORT={port} needs GUNICORN_BIND to be host:port on another port, not {pages!r}")
    host = address[0]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# With METRICS_PORT, /metrics is answered on that port of its own and nowhere else (kelabooking/probes.py).
if os.environ.get("METRICS_PORT", "0").strip() not in ("", "0"):
    bind.append(_metrics_bind(bind[0], int(os.environ["METRICS_PORT"])))
workers = int(os.environ.get("GUNICORN_WORKERS", "3"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = 30
# On SIGTERM the master stops accepting connections and gives in-flight requests this long to finish before it kills
# the workers. The orchestrator's grace (compose's stop_grace_period, Kubernetes' terminationGracePeriodSeconds after
# the preStop delay) must be longer: docs/operations.md, "Graceful shutdown and health".
graceful_timeout = 20
max_requests = 2000
max_requests_jitter = 200
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss "%({x-request-id}o)s"'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# No control socket: gunicorn 25.1+ opens one for `gunicornc` under $XDG_RUNTIME_DIR or $HOME by default, which a
# container's home (read-only, or not the arbitrary user's) refuses at every start ("Control server error").
control_socket_disable = True
# The workers' heartbeat files (unlinked at once, so no name to guess) in memory where the system has /dev/shm, never on
# a read-only or slow disk.
_SHM = "/dev/shm"  # noqa: S108
worker_tmp_dir = _SHM if os.access(_SHM, os.W_OK) else None

# gunicorn's access and error logs are masked like the app's log (kelabooking/logging.py), from the master's first
# line on: the sandbox's Valtuudet stand-in, like the real API, carries an identity code in a request path, and an
# admin search carries a phone number or an e-mail address in the query string.
install_mask()


def on_starting(server) -> None:
    """Refuse to start on a configuration the system checks reject (e.g. several workers without a shared cache),
    including those that read the database (a stored identity code under a key that is not configured, the demo
    admin on a production site): the database must be reachable when the web tier starts."""
    import django

    from kelabooking.metrics import multiprocess_dir_prepare

    # Before any worker counts: PROMETHEUS_MULTIPROC_DIR made, and emptied of an earlier run's files.
    multiprocess_dir_prepare(empty=True)
    os.environ["GUNICORN_WORKERS"] = str(server.cfg.workers)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kelabooking.settings")
    django.setup()
    from kelabooking.checks import refuse_to_start

    refuse_to_start("web")


# No access line for a probe that succeeded; LOG_FORMAT's formatter (JSON in production) on gunicorn's own logs.
logger_class = "kelabooking.logging.GunicornLogger"


def child_exit(server, worker) -> None:
    """With PROMETHEUS_MULTIPROC_DIR (kelabooking/metrics.py): a finished worker's live gauges are dropped."""
    from kelabooking.metrics import mark_process_dead

    mark_process_dead(worker.pid)
