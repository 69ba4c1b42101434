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
