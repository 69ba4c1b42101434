"""The project's one clock. Code asks `clock.now()` so tests can fix time (time-machine) in one place."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone


def now() -> dt.datetime:
    return timezone.now()


def localnow() -> dt.datetime:
    return timezone.localtime(now())
