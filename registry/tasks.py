from __future__ import annotations

from celery import shared_task

from registry.prh import PrhError
from registry.sync import SYNC_TIME_LIMIT_SECONDS, registry_sync, registry_sync_job_lock

RETRY_BASE_SECONDS = 15 * 60


# A few pages from PRH, each with its own timeout, can outlast the global 100 s soft limit.
@shared_task(bind=True, max_retries=3, soft_time_limit=10 * 60, time_limit=SYNC_TIME_LIMIT_SECONDS)
def sync_registry_task(self) -> int | None:
    """Nightly PRH sync. A failed run is recorded by the service; PRH trouble is retried with backoff. One run at a
    time (None: another run holds the job), however many beats queued it."""
    with registry_sync_job_lock() as holds:
        if not holds:
            return None
        try:
            return registry_sync().pk
        except PrhError as error:
            if self.request.is_eager:
                raise
            raise self.retry(exc=error, countdown=RETRY_BASE_SECONDS * 2**self.request.retries) from error
