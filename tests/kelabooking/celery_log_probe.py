"""The Celery app module that tests/kelabooking/test_logging_processes.py starts a worker and beat of: the project's
own app, plus a task and two signal receivers that log personal data the way careless code would (a plain logger, the
task logger, `print`, a traceback); the worker queues the task as a request would, under a request id. Imported only
by those processes, so the test run's app stays as it is."""

from __future__ import annotations

import logging

from celery import signals
from celery.utils.log import get_task_logger

from kelabooking.celery import app
from kelabooking.logging import request_id_var
from tests.kelabooking.test_logging_processes import DONE, EMAIL, IDENTITY_CODE, PHONE, REQUEST_ID

logger = logging.getLogger("kelabooking.probe")
task_logger = get_task_logger(__name__)


def _log_everything(where: str) -> None:
    logger.warning("%s: a plain logger names %s, %s and %s", where, IDENTITY_CODE, PHONE, EMAIL)
    print(f"{where}: print names {IDENTITY_CODE}, {PHONE} and {EMAIL}")  # noqa: T201 - what careless code does


@app.task(name="tests.log_probe_task")
def log_probe_task() -> None:
    _log_everything("task")
    task_logger.warning("task logger names %s, %s and %s", IDENTITY_CODE, PHONE, EMAIL)
    try:
        raise ValueError(f"bad customer {IDENTITY_CODE}")
    except ValueError:
        logger.exception("task failed")
    logger.warning(DONE)


@signals.worker_ready.connect
def _worker_ready(**kwargs) -> None:
    _log_everything("worker")
    token = request_id_var.set(REQUEST_ID)  # as a request queues a task (kelabooking.middleware.RequestIdMiddleware)
    try:
        log_probe_task.delay()
    finally:
        request_id_var.reset(token)


@signals.beat_init.connect
def _beat_init(**kwargs) -> None:
    _log_everything("beat")
    logger.warning(DONE)
