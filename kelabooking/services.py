"""Outbox services: write a message in the caller's transaction (its send task is queued on commit), and put a failed
one back in the queue. Sending is kelabooking/delivery.py's, run by the send task (kelabooking/tasks.py)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from kelabooking import clock, tasks
from kelabooking.message_kinds import message_kind
from kelabooking.models import Message


def messages_enqueue(*, messages: Sequence[Message]) -> list[Message]:
    """Write messages to the outbox in the caller's transaction; after commit their send task is queued.

    A key already in the outbox keeps its row: the conflict on the key updates nothing but returns that row's id, so a
    retried caller cannot produce a second message. A message of a kind no app declared is refused
    (kelabooking/message_kinds.py), and so is one without texts unless its kind renders them.
    """
    for message in messages:
        try:
            kind = message_kind(message.kind)
        except KeyError:
            raise ValueError(f"{message.kind!r} is not a declared message kind") from None
        if not message.body and kind.render is None:
            raise ValueError(f"A {message.kind} message needs its texts: no renderer is registered for the kind")
    now = clock.now()
    for message in messages:
        message.next_attempt_at = now
    with transaction.atomic(savepoint=False):  # in the caller's transaction when there is one
        rows = Message.objects.bulk_create(
            messages, update_conflicts=True, unique_fields=["key"], update_fields=["key"]
        )
        ids = [row.pk for row in rows]
        transaction.on_commit(lambda: tasks.messages_queue(ids))
    return rows


def message_enqueue(
    *,
    key: str,
    kind: str,
    channel: str,
    recipient: str,
    language: str,
    subject: str,
    body: str,
    body_html: str = "",
    calendar: str = "",
) -> Message:
    """One message to the outbox in the caller's transaction (see `messages_enqueue`)."""
    message = Message(
        key=key,
        kind=kind,
        channel=channel,
        recipient=recipient,
        language=language,
        subject=subject,
        body=body,
        body_html=body_html,
        calendar=calendar,
    )
    return messages_enqueue(messages=[message])[0]


@transaction.atomic
def message_resend(*, message_id: int) -> bool:
    """Put a failed message back in the queue (admin action); whether it was. One whose recipient and texts the
    retention job erased is not: there is nothing left to send."""
    updated = Message.objects.filter(pk=message_id, status=Message.Status.FAILED, erased_at=None).update(
        status=Message.Status.PENDING, attempts=0, next_attempt_at=clock.now(), claimed_until=None
    )
    if updated:
        transaction.on_commit(lambda: tasks.messages_queue([message_id]))
    return bool(updated)
