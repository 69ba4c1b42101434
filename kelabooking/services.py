"""Outbox services: write a message in the caller's transaction, send it once, retry with backoff.

Delivery is at-least-once towards the relay and exactly-once in our books: a message is claimed with a
conditional update before sending, marked sent afterwards, and a sent row is never claimed again. E-mail
carries a stable Message-ID and SMS the message id as idempotency key, so a crash between sending and marking
cannot surface as two different messages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F

from kelabooking import clock, sms
from kelabooking.models import Message

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendResult:
    sent: bool
    retry_in: float | None = None


@dataclass(frozen=True)
class RenderedMessage:
    body: str
    subject: str = ""
    body_html: str = ""
    calendar: str = ""


Renderer = Callable[[Message], RenderedMessage]
_renderers: dict[str, Renderer] = {}


def message_renderer(*kinds: str) -> Callable[[Renderer], Renderer]:
    """Register the function that writes the texts of messages of these kinds from their `context` (the app that
    owns the kinds does it when it is ready). Such a message is queued without texts and rendered by the worker."""

    def register(render: Renderer) -> Renderer:
        for kind in kinds:
            _renderers[kind] = render
        return render

    return register


def message_render(message: Message) -> Message:
    """Write the texts of a message that was queued without them, once: a later attempt sends the same texts."""
    if message.body:
        return message
    rendered = _renderers[message.kind](message)
    for field in ("subject", "body", "body_html", "calendar"):
        setattr(message, field, getattr(rendered, field))
    Message.objects.filter(pk=message.pk).update(
        subject=message.subject, body=message.body, body_html=message.body_html, calendar=message.calendar
    )
    return message


# How many messages one send task takes from a dispatch: a burst spreads over the workers, a few at a time.
DISPATCH_BATCH = 10


def _nudge(message_ids: list[int]) -> None:
    """Ask a worker to send newly committed messages (in-process, without a broker, they are sent at once). A broker
    outage must not fail the caller: the sweep catches up."""
    from kelabooking.tasks import send_messages_task

    try:
        send_messages_task.delay(message_ids)
    except Exception:
        logger.warning("Could not queue messages %s; the sweep will retry them", message_ids, exc_info=True)


def messages_enqueue(*, messages: Sequence[Message]) -> list[Message]:
    """Write messages to the outbox in the caller's transaction; after commit their send task is queued.

    A key already in the outbox keeps its row: the conflict on the key updates nothing but returns that row's id, so a
    retried caller cannot produce a second message. A message without texts is refused unless its kind has a
    renderer (`message_renderer`).
    """
    for message in messages:
        if not message.body and message.kind not in _renderers:
            raise ValueError(f"A {message.kind} message needs its texts: no renderer is registered for the kind")
    now = clock.now()
    for message in messages:
        message.next_attempt_at = now
    with transaction.atomic(savepoint=False):  # in the caller's transaction when there is one
        rows = Message.objects.bulk_create(
            messages, update_conflicts=True, unique_fields=["key"], update_fields=["key"]
        )
        ids = [row.pk for row in rows]
        transaction.on_commit(lambda: _nudge(ids))
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


def _claim(message_id: int) -> Message | None:
    now = clock.now()
    lease = now + dt.timedelta(seconds=settings.MESSAGE_CLAIM_SECONDS)
    claimed = Message.objects.due(now=now).filter(pk=message_id).update(claimed_until=lease, attempts=F("attempts") + 1)
    return Message.objects.get(pk=message_id) if claimed else None


def message_id(message: Message, *, domain: str) -> str:
    """The e-mail's Message-ID, derived from the outbox key alone: a repeat after a crash (the relay accepted it, we
    never marked it sent) carries the same one, so mail systems and people can tell it is the same e-mail. The key
    names a booking by id, never a person, and is hashed anyway."""
    digest = hashlib.sha256(message.key.encode()).hexdigest()[:40]
    return f"<{digest}.kelabooking@{domain}>"


def _deliver(message: Message) -> None:
    if message.channel == Message.Channel.EMAIL:
        domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].rstrip(">") or "kelabooking.local"
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.body,
            to=[message.recipient],
            headers={"Message-ID": message_id(message, domain=domain)},
        )
        if message.body_html:
            email.attach_alternative(message.body_html, "text/html")
        if message.calendar:
            method = "CANCEL" if "METHOD:CANCEL" in message.calendar else "REQUEST"
            # Django adds the charset itself; naming it here too would repeat the parameter.
            email.attach("kela.ics", message.calendar, f"text/calendar; method={method}")
        email.send(fail_silently=False)
    else:
        sms.get_backend().send(message_id=f"kelabooking-{message.pk}", to=message.recipient, body=message.body)


def retry_delay(attempts: int) -> float:
    """Exponential backoff with full jitter, capped."""
    ceiling = min(settings.MESSAGE_RETRY_MAX_SECONDS, settings.MESSAGE_RETRY_BASE_SECONDS * 2 ** (attempts - 1))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


def message_send(*, message_id: int) -> SendResult:
    """Send one message if it is still pending and due; a sent or claimed message is left alone."""
    message = _claim(message_id)
    if message is None:
        return SendResult(sent=False)
    try:
        _deliver(message_render(message))
    except Exception as error:
        permanent = isinstance(error, sms.SmsError) and error.permanent
        now = clock.now()
        if permanent or message.attempts >= settings.MESSAGE_MAX_ATTEMPTS:
            Message.objects.filter(pk=message.pk).update(
                status=Message.Status.FAILED, claimed_until=None, last_error=str(error)[:2000]
            )
            logger.error("Message %s failed for good after %s attempts", message.pk, message.attempts)
            return SendResult(sent=False)
        delay = retry_delay(message.attempts)
        Message.objects.filter(pk=message.pk).update(
            claimed_until=None, next_attempt_at=now + dt.timedelta(seconds=delay), last_error=str(error)[:2000]
        )
        logger.warning("Message %s attempt %s failed; retrying in %.0f s", message.pk, message.attempts, delay)
        return SendResult(sent=False, retry_in=delay)
    Message.objects.filter(pk=message.pk).update(
        status=Message.Status.SENT, sent_at=clock.now(), claimed_until=None, last_error=""
    )
    return SendResult(sent=True)


def messages_dispatch(*, waited_seconds: float = 0) -> list[int]:
    """Hand every pending message that is due and has waited at least `waited_seconds` to the send task,
    DISPATCH_BATCH per task. A message that two dispatches hand over is still sent once: the send claims it."""
    from kelabooking.tasks import send_messages_task

    now = clock.now()
    cutoff = now - dt.timedelta(seconds=waited_seconds)
    ids = list(
        Message.objects.due(now=now).filter(next_attempt_at__lte=cutoff).order_by("pk").values_list("pk", flat=True)
    )
    for start in range(0, len(ids), DISPATCH_BATCH):
        batch = ids[start : start + DISPATCH_BATCH]
        try:
            send_messages_task.delay(batch)
        except Exception:
            logger.warning("Could not queue messages %s; the sweep will retry them", batch, exc_info=True)
    return ids


def messages_sweep() -> list[int]:
    """Re-queue every pending message that has waited past its due time: a lost nudge is only a delay."""
    return messages_dispatch(waited_seconds=settings.MESSAGE_SWEEP_AGE_SECONDS)


@transaction.atomic
def message_resend(*, message_id: int) -> bool:
    """Put a failed message back in the queue (admin action); whether it was. One whose recipient and texts the
    retention job erased is not: there is nothing left to send."""
    updated = Message.objects.filter(pk=message_id, status=Message.Status.FAILED, erased_at=None).update(
        status=Message.Status.PENDING, attempts=0, next_attempt_at=clock.now(), claimed_until=None
    )
    if updated:
        transaction.on_commit(lambda: _nudge([message_id]))
    return bool(updated)
