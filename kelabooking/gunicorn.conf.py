"""gunicorn settings for the web container; each can be overridden with GUNICORN_CMD_ARGS."""

from __future__ import annotations

import os

from kelabooking.logging import install_mask

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "3"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = 30
graceful_timeout = 20
max_requests = 2000
max_requests_jitter = 200
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss "%({x-request-id}o)s"'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# gunicorn's access and error logs are masked like the app's log (kelabooking/logging.py), from the master's first
# line on: the sandbox's Valtuudet stand-in, like the real API, carries an identity code in a request path, and an
# admin search carries a phone number or an e-mail address in the query string.
install_mask()


def on_starting(server) -> None:
    """Refuse to start on a configuration the system checks reject (e.g. several workers without a shared cache),
    including those that read the database (a stored identity code under a key that is not configured, the demo
    admin on a production site): the database must be reachable when the web tier starts."""
    import django
    from django.conf import settings
    from django.core import checks
    from django.db import connections

    os.environ["GUNICORN_WORKERS"] = str(server.cfg.workers)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kelabooking.settings")
    django.setup()
    try:
        messages = checks.run_checks(databases=list(settings.DATABASES))
    finally:
        connections.close_all()  # the workers are forked from this process: none may inherit its connections
    serious = [message for message in messages if message.is_serious()]
    if serious:
        raise SystemExit("kelabooking cannot start:\n" + "\n".join(str(message) for message in serious))


# No access line for a probe that succeeded; LOG_FORMAT's formatter (JSON in production) on gunicorn's own logs.
logger_class = "kelabooking.logging.GunicornLogger"


def child_exit(server, worker) -> None:
    """With PROMETHEUS_MULTIPROC_DIR (kelabooking/metrics.py): a finished worker's live gauges are dropped."""
    from kelabooking.metrics import mark_process_dead

    mark_process_dead(worker.pid)
