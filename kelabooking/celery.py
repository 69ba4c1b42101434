"""The Celery app. Without CELERY_BROKER_URL the settings make every task run eagerly in-process.

Its signals carry what the web process knows into the worker and beat:
- the request id: a task queued by a request carries the request's id in its headers, and the worker's log lines
  for that task name it (kelabooking/logging.py);
- the log format: Celery replaces the root logger's handlers with its own in worker and beat (`print` goes to a logger
  too); LOG_FORMAT's formatter is put on them. The personal data masks need nothing here: they are applied when a
  record is made, by the record factory Django's logging set-up installed;
- the metrics: a worker's pool processes count in PROMETHEUS_MULTIPROC_DIR, the worker serves them on METRICS_PORT,
  and each periodic task's last run (and beat's last send of it) goes to the shared cache for /metrics.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kelabooking.settings")

app = Celery("kelabooking")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "kelabooking_request_id"

_in_beat = False


@signals.before_task_publish.connect
def _pass_request_id(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    from kelabooking.logging import current_request_id

    request_id = current_request_id()
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, request_id)
    if _in_beat:
        _periodic_timestamp(BEAT_SENT, headers)


@signals.task_prerun.connect
def _restore_request_id(task: Any = None, **kwargs: Any) -> None:
    from kelabooking.logging import request_id_var

    if task is None:
        return
    request_id = getattr(task.request, REQUEST_ID_HEADER, None)
    if request_id:  # an eager task keeps the request's own id; a worker's gets the one it was queued with
        task.request._kelabooking_request_token = request_id_var.set(request_id)
    _periodic_timestamp(PERIODIC_RAN, {"task": task.name})


@signals.task_postrun.connect
def _forget_request_id(task: Any = None, **kwargs: Any) -> None:
    from kelabooking.logging import request_id_var

    token = getattr(task.request, "_kelabooking_request_token", None) if task is not None else None
    if token is not None:
        request_id_var.reset(token)
        task.request._kelabooking_request_token = None


PERIODIC_RAN, BEAT_SENT = "ran", "sent"


def _periodic_timestamp(what: str, headers: dict[str, Any] | None) -> None:
    """Note in the shared cache when a periodic task (a CELERY_BEAT_SCHEDULE entry) was sent or started."""
    from django.conf import settings
    from django.core.cache import cache

    from kelabooking.metrics import BEAT_SENT_KEY, PERIODIC_RAN_KEY

    name = (headers or {}).get("task")
    entries = [entry for entry, spec in settings.CELERY_BEAT_SCHEDULE.items() if spec["task"] == name]
    if not entries:
        return
    key = PERIODIC_RAN_KEY if what == PERIODIC_RAN else BEAT_SENT_KEY
    try:
        cache.set_many({key.format(entry): time.time() for entry in entries}, timeout=None)
    except Exception:  # a cache outage must not stop the task; the stale timestamp is what an alert should see
        logger.warning("Could not record the periodic task %s", name)


@signals.beat_init.connect
def _beat_started(**kwargs: Any) -> None:
    """Beat's start: the system checks, as gunicorn's start runs them."""
    global _in_beat
    from kelabooking.checks import refuse_to_start

    refuse_to_start("beat")
    _in_beat = True


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _log_format(logger: Any = None, **kwargs: Any) -> None:
    from django.conf import settings

    from kelabooking.logging import use_formatter

    if logger is not None:
        use_formatter(logger, settings.LOG_FORMAT)


@signals.celeryd_init.connect
def _worker_starting(**kwargs: Any) -> None:
    """A worker's start, before its pool processes fork: the system checks (as gunicorn's start runs them), then
    PROMETHEUS_MULTIPROC_DIR made and emptied of an earlier run's files (kelabooking/metrics.py)."""
    from kelabooking.checks import refuse_to_start
    from kelabooking.metrics import multiprocess_dir_prepare

    refuse_to_start("worker")
    multiprocess_dir_prepare(empty=True)


@signals.worker_ready.connect
def _serve_metrics(**kwargs: Any) -> None:
    from django.conf import settings

    from kelabooking.metrics import worker_metrics_serve

    if settings.METRICS_PORT:
        worker_metrics_serve(settings.METRICS_PORT)


@signals.worker_process_shutdown.connect
def _pool_process_gone(pid: int | None = None, **kwargs: Any) -> None:
    from kelabooking.metrics import mark_process_dead

    mark_process_dead(pid or os.getpid())
