from __future__ import annotations

from celery import shared_task

from kelabooking import services


@shared_task(bind=True, max_retries=None, acks_late=True)
def send_message_task(self, message_id: int) -> bool:
    """Send one outbox message; on a transient failure schedule the next attempt with backoff."""
    result = services.message_send(message_id=message_id)
    if result.retry_in is not None and not self.request.is_eager:
        raise self.retry(countdown=result.retry_in)
    return result.sent


@shared_task
def sweep_messages_task() -> int:
    return len(services.messages_sweep())
