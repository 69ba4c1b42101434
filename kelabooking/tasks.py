from __future__ import annotations

from celery import shared_task

from kelabooking import retention, services


@shared_task(bind=True, acks_late=True)
def send_messages_task(self, message_ids: list[int]) -> int:
    """Send outbox messages one after another; one that fails transiently is queued again alone, with backoff."""
    results = [services.message_send(message_id=message_id) for message_id in message_ids]
    if not self.request.is_eager:  # in-process (the embedded default) the sweep retries instead
        for message_id, result in zip(message_ids, results, strict=True):
            if result.retry_in is not None:
                send_messages_task.apply_async(([message_id],), countdown=result.retry_in)
    return sum(result.sent for result in results)


@shared_task
def sweep_messages_task() -> int:
    return len(services.messages_sweep())


@shared_task
def retention_run_task() -> dict[str, int]:
    """Nightly: apply the retention rules (kelabooking/retention.py); the run is recorded and audited."""
    run = retention.retention_run()
    return {name: getattr(run, name) for name in retention.RULES}
