"""Periodic jobs that must not run twice at once, whatever starts them: two Celery beats during a rollout, a beat and
an operator's command, a task redelivered after its worker was lost.

`job_lock(name, lease=...)` takes the job's row in `JobLock` with one conditional UPDATE (the outbox claims messages
the same way): the run that takes it does the work, a run that finds it taken does nothing. No transaction is held
open meanwhile (the registry sync waits on PRH between its writes); a run whose worker died leaves the lock to run out
at the end of its lease, which is longer than the job's time limit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Iterator

from django.db.models import Q

from kelabooking import clock
from kelabooking.models import JobLock

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def job_lock(name: str, *, lease: dt.timedelta) -> Iterator[bool]:
    """Yield True when this run holds the job's lock (until the block ends, or `lease` at most), False when another
    run holds it: then the block must do nothing."""
    holder = uuid.uuid4().hex
    JobLock.objects.bulk_create([JobLock(name=name)], ignore_conflicts=True)
    now = clock.now()
    taken = (
        JobLock.objects.filter(name=name)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
        .update(holder=holder, locked_until=now + lease)
    )
    if not taken:
        logger.info("periodic job %s: another run holds it; this run does nothing", name)
        yield False
        return
    try:
        yield True
    finally:
        JobLock.objects.filter(name=name, holder=holder).update(holder="", locked_until=None, finished_at=clock.now())
