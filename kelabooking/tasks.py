"""The outbox's Celery tasks and what queues them, and the nightly retention job.

Two beats may queue each periodic task twice: the sweep is harmless twice (a send claims its message), the retention
job runs one at a time (kelabooking/jobs.py).

The send task takes message ids and sends each (kelabooking/delivery.py). It is queued after the commit that wrote the
messages (`messages_queue`, from kelabooking/services.py) and by the sweep, which hands over what has waited past its
due time: a lost nudge, or a broker that was down, is only a delay.
"""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.conf import settings

from kelabooking import clock, delivery, retention
from kelabooking.models import Message

logger = logging.getLogger(__name__)

# How many messages one send task takes: a burst spreads over the workers, a few at a time.
DISPATCH_BATCH = 10


@shared_task(bind=True, acks_late=True)
def send_messages_task(self, message_ids: list[int]) -> int:
    """Send outbox messages one after another; one that fails transiently is queued again alone, with backoff."""
    results = [delivery.message_send(message_id=message_id) for message_id in message_ids]
    if not self.request.is_eager:  # in-process (the embedded default) the sweep retries instead
        for message_id, result in zip(message_ids, results, strict=True):
            if result.retry_in is not None:
                send_messages_task.apply_async(([message_id],), countdown=result.retry_in)
    return sum(result.sent for result in results)


def messages_queue(message_ids: list[int]) -> None:
    """Ask the workers to send these messages, DISPATCH_BATCH per send task (in-process, without a broker, they are
    sent at once). A broker outage must not fail the caller: it is logged, and the sweep catches up."""
    for start in range(0, len(message_ids), DISPATCH_BATCH):
        batch = message_ids[start : start + DISPATCH_BATCH]
        try:
            send_messages_task.delay(batch)
        except Exception:
            logger.warning("Could not queue messages %s; the sweep will retry them", batch, exc_info=True)


def messages_dispatch(*, waited_seconds: float = 0) -> list[int]:
    """Hand every pending message that is due and has waited at least `waited_seconds` to the send task. A message
    that two dispatches hand over is still sent once: the send claims it."""
    now = clock.now()
    cutoff = now - dt.timedelta(seconds=waited_seconds)
    ids = list(
        Message.objects.due(now=now).filter(next_attempt_at__lte=cutoff).order_by("pk").values_list("pk", flat=True)
    )
    messages_queue(ids)
    return ids


def messages_sweep() -> list[int]:
    """Re-queue every pending message that has waited past its due time: a lost nudge is only a delay."""
    return messages_dispatch(waited_seconds=settings.MESSAGE_SWEEP_AGE_SECONDS)


@shared_task
def sweep_messages_task() -> int:
    return len(messages_sweep())


@shared_task
def retention_run_task() -> dict[str, int] | None:
    """Nightly: apply the retention rules (kelabooking/retention.py); the run is recorded and audited. One run at a
    time (None: another run holds the job), however many beats queued it."""
    with retention.retention_job_lock() as holds:
        if not holds:
            return None
        run = retention.retention_run()
    return {rule.count: getattr(run, rule.count) for rule in retention.retention_rules()}
