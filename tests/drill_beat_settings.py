"""The settings of the celery beats in the two-schedulers drill (tests/test_replica_drills.py): production's, with
every periodic job due every DRILL_BEAT_INTERVAL_SECONDS, so that a few minutes hold many nights."""

from __future__ import annotations

import os

from kelabooking.settings import *  # noqa: F403
from kelabooking.settings import CELERY_BEAT_SCHEDULE as PRODUCTION_SCHEDULE

INTERVAL = float(os.environ.get("DRILL_BEAT_INTERVAL_SECONDS", "10"))
CELERY_BEAT_SCHEDULE = {name: {**entry, "schedule": INTERVAL} for name, entry in PRODUCTION_SCHEDULE.items()}
