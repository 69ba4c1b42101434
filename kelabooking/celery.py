"""The Celery app. Without CELERY_BROKER_URL the settings make every task run eagerly in-process."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kelabooking.settings")

app = Celery("kelabooking")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
