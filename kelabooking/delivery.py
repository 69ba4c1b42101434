"""Sending one outbox message: claim it, write its texts if its kind renders them, deliver it by its channel (SMS or
e-mail), and mark it sent, or put it back with backoff, or failed for good.

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
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import F

from kelabooking import clock, sms
from kelabooking.message_kinds import message_kind
from kelabooking.metrics import OUTBOX_SEND_ATTEMPTS
from kelabooking.models import Message

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendResult:
    sent: bool
    retry_in: float | None = None


def message_render(message: Message) -> Message:
    """Write the texts of a message that was queued without them, once: a later attempt sends the same texts."""
    if message.body:
        return message
    rendered = message_kind(message.kind).render(message)
    for field in ("subject", "body", "body_html", "calendar"):
        setattr(message, field, getattr(rendered, field))
    Message.objects.filter(pk=message.pk).update(
        subject=message.subject, body=message.body, body_html=message.body_html, calendar=message.calendar
    )
    return message


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
            OUTBOX_SEND_ATTEMPTS.labels(message.channel, "given_up").inc()
            return SendResult(sent=False)
        delay = retry_delay(message.attempts)
        Message.objects.filter(pk=message.pk).update(
            claimed_until=None, next_attempt_at=now + dt.timedelta(seconds=delay), last_error=str(error)[:2000]
        )
        logger.warning("Message %s attempt %s failed; retrying in %.0f s", message.pk, message.attempts, delay)
        OUTBOX_SEND_ATTEMPTS.labels(message.channel, "retry").inc()
        return SendResult(sent=False, retry_in=delay)
    Message.objects.filter(pk=message.pk).update(
        status=Message.Status.SENT, sent_at=clock.now(), claimed_until=None, last_error=""
    )
    OUTBOX_SEND_ATTEMPTS.labels(message.channel, "sent").inc()
    return SendResult(sent=True)
