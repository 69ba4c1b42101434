"""System checks of the production shape (run by `manage.py check`, `migrate` and gunicorn's start)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.utils.module_loading import import_string

# Cache backends whose counters live in one process only.
PER_PROCESS_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


def web_workers() -> int:
    """How many web processes serve requests: gunicorn's worker count (kelabooking/gunicorn.conf.py)."""
    try:
        return int(os.environ.get("GUNICORN_WORKERS", "3"))
    except ValueError:
        return 3


def check_shared_cache(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """kelabooking.E001: with more than one web process, the rate limits need a cache that all of them share."""
    backend = settings.CACHES["default"]["BACKEND"]
    if settings.DEBUG or backend not in PER_PROCESS_CACHES or web_workers() <= 1:
        return []
    return [
        Error(
            f"{web_workers()} web workers would each keep their own rate-limit counters ({backend}).",
            hint="Set REDIS_URL so that every web process shares one cache, or run one worker (GUNICORN_WORKERS=1).",
            id="kelabooking.E001",
        )
    ]


def check_identity_code_keys(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """kelabooking.E002: identity codes are stored encrypted and looked up by a keyed hash; without both key lists
    (or with a malformed key) nothing can be stored or found, so the app refuses to start."""
    from kelabooking import crypto

    return [
        Error(
            problem,
            hint="Generate keys with `manage.py rotate_identity_keys --new-keys` and set them in the environment.",
            id="kelabooking.E002",
        )
        for problem in crypto.check_keys()
    ]


# One check a retention setting, each with its own id; the bounds are the retention job's own (retention.BOUNDS).
RETENTION_CHECK_IDS = {
    "contact_days": "kelabooking.E010",
    "customer_days": "kelabooking.E011",
    "message_days": "kelabooking.E012",
    "audit_days": "kelabooking.E013",
}


def check_retention_limits(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """kelabooking.E010–E013: each RETENTION_* setting within its bounds. Out of them the job would erase or remove
    what is still in use (a negative RETENTION_CUSTOMER_DAYS removes customers with upcoming bookings), or empty the
    audit trail (RETENTION_AUDIT_DAYS=0); the job itself refuses such limits too."""
    from kelabooking import retention

    errors = []
    for name, check_id in RETENTION_CHECK_IDS.items():
        bound = retention.BOUNDS[name]
        problem = retention.limit_problem(name, getattr(settings, bound.setting))
        if problem:
            errors.append(
                Error(problem, hint=f'Set {bound.setting} (README, "Retention") within its bounds.', id=check_id)
            )
    return errors


def check_message_backends(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """kelabooking.E020, E021: with DEBUG off, no message backend writes what it sends to the console or to files.

    The console backends are the embedded default when no SMTP relay or SMS gateway is configured; they would print
    every recipient's e-mail address or phone number and every text (names, booking times) to the process's output,
    where the log masks cannot tell a message from a log line. A public demo is no exception: its visitors type real
    numbers and addresses."""
    from django.core.mail.backends.console import EmailBackend as ConsoleEmailBackend

    from kelabooking import sms

    if settings.DEBUG:
        return []
    errors = []
    if issubclass(import_string(settings.EMAIL_BACKEND), ConsoleEmailBackend):  # the file backend is one too
        errors.append(
            Error(
                f"EMAIL_BACKEND {settings.EMAIL_BACKEND} writes every e-mail, recipient and text, to the console or "
                "to files.",
                hint="Set EMAIL_HOST (the SMTP relay), or EMAIL_BACKEND to a backend that delivers e-mail.",
                id="kelabooking.E020",
            )
        )
    if issubclass(import_string(settings.SMS_BACKEND), sms.ConsoleBackend):
        errors.append(
            Error(
                f"SMS_BACKEND {settings.SMS_BACKEND} writes every SMS, phone number and text, to the console.",
                hint="Set SMS_GATEWAY_URL (and SMS_GATEWAY_TOKEN), or SMS_BACKEND to a backend that delivers SMS.",
                id="kelabooking.E021",
            )
        )
    return errors
