"""Celery beat's scheduler with a heartbeat: the file `<schedule file>.heartbeat`, touched at every turn of beat's
loop. Beat turns at least once a minute (the outbox sweep is due every minute), so a heartbeat older than a few
minutes means beat is stuck or gone: the containers' health checks and Kubernetes' liveness probe read its age
(docs/operations.md, "Graceful shutdown and health")."""

from __future__ import annotations

import logging
from pathlib import Path

from celery.beat import PersistentScheduler

logger = logging.getLogger(__name__)


class HeartbeatScheduler(PersistentScheduler):
    """The default scheduler (the schedule kept in a file), which also touches its heartbeat file on every tick."""

    @property
    def heartbeat_file(self) -> Path:
        return Path(f"{self.schedule_filename}.heartbeat")

    def tick(self, *args, **kwargs) -> float:
        try:
            self.heartbeat_file.touch()
        except OSError as error:
            logger.warning("Cannot touch beat's heartbeat file %s: %s", self.heartbeat_file, error)
        return super().tick(*args, **kwargs)
