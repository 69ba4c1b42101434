from __future__ import annotations

from celery import shared_task

from registry.prh import PrhError
from registry.sync import registry_sync

RETRY_BASE_SECONDS = 15 * 60


# A few pages from PRH, each with its own timeout, can outlast the global 100 s soft limit.
@shared_task(bind=True, max_retries=3, soft_time_limit=10 * 60, time_limit=11 * 60)
def sync_registry_task(self) -> int:
    """Nightly PRH sync. A failed run is recorded by the service; PRH trouble is retried with backoff."""
    try:
        return registry_sync().pk
    except PrhError as error:
        if self.request.is_eager:
            raise
        raise self.retry(exc=error, countdown=RETRY_BASE_SECONDS * 2**self.request.retries) from error
