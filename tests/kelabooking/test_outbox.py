"""The outbox: written in the caller's transaction, sent once after commit, retried with backoff, swept."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.db import transaction

from kelabooking import clock, delivery
from kelabooking.delivery import message_send
from kelabooking.models import Message
from kelabooking.services import message_enqueue, message_resend, messages_enqueue
from kelabooking.sms import LocmemBackend
from kelabooking.tasks import messages_sweep
from registry.models import RegistrationRequest

pytestmark = pytest.mark.django_db

CLOSED_PORT = 9  # discard: nothing listens there on the test machine


def fields(key: str = "test:1:confirmation:email", **overrides) -> dict:
    return {
        "key": key,
        "kind": RegistrationRequest.MessageKind.DECISION,
        "channel": Message.Channel.EMAIL,
        "recipient": "maija@example.org",
        "language": "fi",
        "subject": "Päätös",
        "body": "Hakemuksesi on hyväksytty.",
        **overrides,
    }


def enqueue(key: str = "test:1:confirmation:email", **overrides) -> Message:
    return message_enqueue(**fields(key, **overrides))


def test_message__enqueue__is_sent_after_commit_only(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        message = enqueue()
        assert mail.outbox == []  # nothing leaves before the transaction commits
    assert len(callbacks) == 1
    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert message.sent_at is not None
    assert message.attempts == 1
    assert [sent.subject for sent in mail.outbox] == ["Päätös"]
    assert mail.outbox[0].to == ["maija@example.org"]
    # Derived from the outbox key, so that a repeat after a crash carries the same one.
    assert mail.outbox[0].extra_headers["Message-ID"] == delivery.message_id(message, domain="kela.example")


def test_message__enqueue_without_texts_of_a_kind_nobody_renders__refused() -> None:
    with pytest.raises(ValueError, match="no renderer"):
        enqueue(subject="", body="")
    assert not Message.objects.exists()


def test_message__enqueue_of_a_kind_no_app_declared__refused() -> None:
    """The kinds are the apps' (kelabooking/message_kinds.py): a message nobody declared would have no readers."""
    with pytest.raises(ValueError, match="not a declared message kind"):
        enqueue(kind="newsletter")
    assert not Message.objects.exists()


def test_message__enqueue_in_rolled_back_transaction__leaves_nothing(django_capture_on_commit_callbacks) -> None:
    def enqueue_then_fail() -> None:
        with transaction.atomic():
            enqueue()
            raise RuntimeError("the change that caused the message failed")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        enqueue_then_fail()
    assert not Message.objects.exists()
    assert mail.outbox == []


def test_message__enqueue_same_key_twice__one_row_one_send(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = enqueue()
        second = enqueue(body="another body")
    assert first.pk == second.pk
    assert Message.objects.count() == 1
    assert len(mail.outbox) == 1


def test_messages__enqueue_two__one_insert_and_one_task_sends_both(
    django_capture_on_commit_callbacks, django_assert_max_num_queries
) -> None:
    sms = Message(**fields("test:1:decision:sms", channel=Message.Channel.SMS, recipient="+358401234567", body="Hei"))
    email = Message(**fields())
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with django_assert_max_num_queries(1):
            messages = messages_enqueue(messages=[sms, email])
        assert all(message.pk for message in messages)
    assert len(callbacks) == 1
    assert set(Message.objects.values_list("status", flat=True)) == {Message.Status.SENT}
    assert [sent["to"] for sent in LocmemBackend.outbox] == ["+358401234567"]
    assert [sent.to for sent in mail.outbox] == [["maija@example.org"]]


def test_message__send_twice__sent_only_once() -> None:
    message = enqueue()
    assert message_send(message_id=message.pk).sent is True
    assert message_send(message_id=message.pk).sent is False
    assert len(mail.outbox) == 1


def test_message__send_while_claimed_by_another_worker__does_nothing() -> None:
    message = enqueue()
    Message.objects.filter(pk=message.pk).update(claimed_until=clock.now() + dt.timedelta(minutes=5))
    assert message_send(message_id=message.pk).sent is False
    assert mail.outbox == []


def test_message__send_after_claim_expired__is_sent() -> None:
    """A worker that died mid-send leaves a claim that runs out; the message is then sent by another."""
    message = enqueue()
    Message.objects.filter(pk=message.pk).update(claimed_until=clock.now() - dt.timedelta(seconds=1), attempts=1)
    assert message_send(message_id=message.pk).sent is True
    message.refresh_from_db()
    assert message.attempts == 2


def test_message__sms__goes_through_the_sms_backend() -> None:
    message = enqueue(key="test:1:decision:sms", channel=Message.Channel.SMS, recipient="+358401234567", body="Hei")
    assert message_send(message_id=message.pk).sent is True
    assert LocmemBackend.outbox == [{"message_id": f"kelabooking-{message.pk}", "to": "+358401234567", "body": "Hei"}]


def test_message__send_when_smtp_unreachable__stays_pending_with_backoff(settings) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", CLOSED_PORT, 2
    message = enqueue()
    result = message_send(message_id=message.pk)
    message.refresh_from_db()
    assert result.sent is False
    assert result.retry_in is not None
    assert settings.MESSAGE_RETRY_BASE_SECONDS / 2 <= result.retry_in <= settings.MESSAGE_RETRY_BASE_SECONDS
    assert message.status == Message.Status.PENDING
    assert message.attempts == 1
    assert message.last_error
    assert message.next_attempt_at > clock.now()
    # Not due yet: a second nudge does not hammer the relay.
    assert message_send(message_id=message.pk) == type(result)(sent=False)
    message.refresh_from_db()
    assert message.attempts == 1


def test_messages__send_task_with_one_failing__queues_only_that_one_again(settings, monkeypatch) -> None:
    """In a worker: the message that fails for a while goes back to the queue alone, with its backoff."""
    from kelabooking.tasks import send_messages_task

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", CLOSED_PORT, 2
    sms = enqueue(key="test:1:decision:sms", channel=Message.Channel.SMS, recipient="+358401234567", body="Hei")
    email = enqueue()
    queued = []
    monkeypatch.setattr(send_messages_task, "apply_async", lambda args, countdown: queued.append((args, countdown)))

    assert send_messages_task.run([email.pk, sms.pk]) == 1  # run() is the worker's call: not eager

    email.refresh_from_db()
    assert email.status == Message.Status.PENDING
    assert [args for args, _countdown in queued] == [([email.pk],)]
    assert settings.MESSAGE_RETRY_BASE_SECONDS / 2 <= queued[0][1] <= settings.MESSAGE_RETRY_BASE_SECONDS
    assert Message.objects.get(pk=sms.pk).status == Message.Status.SENT


def test_message__backoff__grows_and_is_capped(settings) -> None:
    from kelabooking.delivery import retry_delay

    settings.MESSAGE_RETRY_BASE_SECONDS, settings.MESSAGE_RETRY_MAX_SECONDS = 10, 100
    assert 5 <= retry_delay(1) <= 10
    assert 20 <= retry_delay(3) <= 40
    assert 50 <= retry_delay(10) <= 100


def test_message__retried_until_limit__then_failed_and_resendable(settings) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", CLOSED_PORT, 2
    settings.MESSAGE_MAX_ATTEMPTS = 3
    message = enqueue()
    with time_machine.travel(clock.now(), tick=False) as traveller:
        for _attempt in range(3):
            message_send(message_id=message.pk)
            traveller.shift(dt.timedelta(hours=2))
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert message.attempts == 3

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    message_resend(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == Message.Status.PENDING
    assert message_send(message_id=message.pk).sent is True
    assert len(mail.outbox) == 1


def test_message__sweep__requeues_only_stale_pending(django_capture_on_commit_callbacks) -> None:
    with time_machine.travel(clock.now() - dt.timedelta(minutes=5), tick=False):
        stale = enqueue(key="stale")  # its nudge was lost: never executed
        sent = enqueue(key="sent")
        message_send(message_id=sent.pk)
    fresh = enqueue(key="fresh")
    assert messages_sweep() == [stale.pk]
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == Message.Status.SENT  # the sweep's nudge ran the send (tasks are eager here)
    assert fresh.status == Message.Status.PENDING
    assert len(mail.outbox) == 2


def test_message__constraint__sent_without_sent_at_is_refused() -> None:
    from django.db import IntegrityError

    message = enqueue()
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.filter(pk=message.pk).update(status=Message.Status.SENT)
