"""gunicorn settings for the web container; each can be overridden with GUNICORN_CMD_ARGS."""

from __future__ import annotations

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "3"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = 30
graceful_timeout = 20
max_requests = 2000
max_requests_jitter = 200
accesslog = "-"
# The access log carries paths only; identity codes never travel in URLs.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss "%({x-request-id}o)s"'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# gunicorn's own access and error logs go through the same identity-code mask as the app's log: the sandbox's
# Valtuudet stand-in, like the real API, carries the code in a request path.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_identity_codes": {"()": "kelabooking.logging.MaskIdentityCodesFilter"}},
    "handlers": {
        "access": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "filters": ["mask_identity_codes"]},
        "error": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "filters": ["mask_identity_codes"]},
    },
    # gunicorn merges this over its defaults key by key: the root logger must name a handler defined here.
    "root": {"level": "INFO", "handlers": ["error"]},
    "loggers": {
        "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        "gunicorn.error": {"handlers": ["error"], "level": "INFO", "propagate": False},
    },
}


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
