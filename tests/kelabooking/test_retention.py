"""Retention (kelabooking/retention.py): each rule driven with a fixed clock, the run recorded and audited, the dry run
changing nothing, and "who handled this customer" still telling what was removed."""

from __future__ import annotations

import datetime as dt
from importlib import import_module

import pytest
import time_machine
from django.conf import settings as django_settings
from django.contrib import messages as admin_messages
from django.core import mail
from django.core.management import CommandError, call_command
from django.urls import reverse

from bookings.models import Booking, Customer
from bookings.services import customer_find_or_create
from kelabooking import clock
from kelabooking.checks import check_retention_limits
from kelabooking.delivery import message_send
from kelabooking.models import Message, RetentionRun
from kelabooking.retention import Limits, retention_job_lock, retention_run
from kelabooking.services import message_resend
from partners.models import AppendOnlyError, AuditEvent, RemovedAuditEvents
from partners.services import audit_event_record
from tests.factories import BookingFactory, CustomerFactory, SlotFactory, acting_for

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 1, 12, 9, 0, tzinfo=dt.UTC)  # when the data is made
DAY = dt.timedelta(days=1)


def at(moment: dt.datetime):
    return time_machine.travel(moment, tick=False)


def booking_called_at(moment: dt.datetime, **kwargs) -> Booking:
    with at(moment - 3 * DAY):
        slot = SlotFactory(starts_at=moment, ends_at=moment + dt.timedelta(minutes=45))
        return BookingFactory.confirmed(
            slot=slot, contact_email="asiakas@example.org", description="Vuokra nousi", **kwargs
        )


def run_at(moment: dt.datetime, **kwargs) -> RetentionRun:
    with at(moment):
        return retention_run(**kwargs)


def test_expired_holds__removed_at_once__a_live_hold_stays() -> None:
    with at(START):
        expired = BookingFactory.held(expires_at=START - dt.timedelta(minutes=1))
        live = BookingFactory.held(expires_at=START + dt.timedelta(minutes=5))
    run = run_at(START)
    assert run.expired_holds == 1
    assert not Booking.objects.filter(pk=expired.pk).exists()
    assert Booking.objects.filter(pk=live.pk).exists()


def test_typed_contact_details__erased_ninety_days_after_the_call__the_booking_stays(settings) -> None:
    assert settings.RETENTION_CONTACT_DAYS == 90
    old = booking_called_at(START)
    recent = booking_called_at(START + 10 * DAY)
    run = run_at(START + 91 * DAY)
    assert run.contacts_erased == 1
    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.contact_phone, old.contact_email, old.description) == ("", "", "")
    assert old.contact_erased_at == START + 91 * DAY
    assert (old.status, old.slot_id, old.organisation_id) == (
        Booking.Status.CONFIRMED,
        old.slot_id,
        old.organisation_id,
    )
    assert recent.contact_phone
    assert recent.contact_email
    assert recent.description
    assert run_at(START + 92 * DAY).contacts_erased == 0  # erased once


def test_partner_entered_customer__removed_two_years_after_the_last_call__bookings_stay_as_statistics() -> None:
    with at(START):
        stale = CustomerFactory.not_in_register(first_name="Pia")
        active = CustomerFactory.not_in_register(first_name="Ulla")
        register = CustomerFactory(first_name="Kela")  # the register's own customers are never removed here
    old_booking = booking_called_at(START + DAY, customer=stale)
    booking_called_at(START + DAY, customer=register)
    booking_called_at(START + 400 * DAY, customer=active)  # called within the last two years of the run
    with at(START + 2 * DAY):
        audit_event_record(acting=acting_for(), action=AuditEvent.Action.CUSTOMER_OPENED, customer=stale)
    run = run_at(START + 2 * DAY + 731 * DAY)
    assert run.customers_removed == 1
    assert not Customer.objects.filter(pk=stale.pk).exists()
    assert set(Customer.objects.values_list("pk", flat=True)) == {active.pk, register.pk}
    old_booking.refresh_from_db()
    assert old_booking.customer is None
    assert (old_booking.contact_phone, old_booking.contact_email, old_booking.description) == ("", "", "")
    assert old_booking.status == Booking.Status.CONFIRMED
    assert old_booking.slot_id
    event = AuditEvent.objects.get(action=AuditEvent.Action.CUSTOMER_OPENED)
    assert event.customer is None
    assert event.customer_digest == stale.identity_code_digest


def test_sent_messages__texts_and_recipient_erased_after_ninety_days__status_kept() -> None:
    with at(START):
        sent = Message.objects.create(
            key="old-sent",
            kind=Booking.MessageKind.CONFIRMATION,
            channel=Message.Channel.SMS,
            recipient="+358401234567",
            language="fi",
            subject="",
            body="Aika varattu",
            status=Message.Status.SENT,
            sent_at=START,
            next_attempt_at=START,
        )
        recent = Message.objects.create(
            key="recent-sent",
            kind=Booking.MessageKind.CONFIRMATION,
            channel=Message.Channel.SMS,
            recipient="+358401234567",
            language="fi",
            body="Aika varattu",
            status=Message.Status.SENT,
            sent_at=START + 10 * DAY,  # queued long ago, sent within the period: counted from the sending
            next_attempt_at=START,
        )
    run = run_at(START + 91 * DAY)
    assert run.messages_erased == 1
    sent.refresh_from_db()
    recent.refresh_from_db()
    assert (sent.recipient, sent.body, sent.status, sent.sent_at) == ("", "", Message.Status.SENT, START)
    assert sent.erased_at == START + 91 * DAY
    assert (recent.recipient, recent.body) == ("+358401234567", "Aika varattu")


def unsent_message(key: str, status: str, **fields) -> Message:
    return Message.objects.create(
        **{
            "key": key,
            "kind": Booking.MessageKind.CONFIRMATION,
            "channel": Message.Channel.EMAIL,
            "recipient": "asiakas@example.org",
            "language": "fi",
            "subject": "Aika",
            "body": "Aika varattu: soitamme numeroon 040 7654321",
            "status": status,
            "last_error": "relay refused asiakas@example.org",
            "next_attempt_at": clock.now(),
            **fields,
        }
    )


def test_failed_and_pending_messages__erased_ninety_days_after_queued__never_sent_again() -> None:
    with at(START):
        failed = unsent_message("old-failed", Message.Status.FAILED)
        pending = unsent_message("old-pending", Message.Status.PENDING)
    with at(START + 10 * DAY):
        recent = unsent_message("recent-failed", Message.Status.FAILED)
    run = run_at(START + 91 * DAY)
    assert run.messages_erased == 2
    for message in (failed, pending):
        message.refresh_from_db()
        erased = (message.recipient, message.subject, message.body, message.last_error, message.context)
        assert erased == ("", "", "", "", {})
        assert message.erased_at == START + 91 * DAY
        # Never sent now: a pending one is failed, and neither is queued again.
        assert message.status == Message.Status.FAILED
        with at(START + 92 * DAY):
            assert message_resend(message_id=message.pk) is False
            assert message_send(message_id=message.pk).sent is False
        message.refresh_from_db()
        assert message.status == Message.Status.FAILED
    assert mail.outbox == []
    recent.refresh_from_db()
    assert (recent.recipient, recent.status) == ("asiakas@example.org", Message.Status.FAILED)
    assert run_at(START + 92 * DAY).messages_erased == 0  # erased once


def test_pending_message__claimed_by_a_worker__left_to_it_until_the_next_run() -> None:
    with at(START):
        claimed = unsent_message("claimed", Message.Status.PENDING)
    Message.objects.filter(pk=claimed.pk).update(claimed_until=START + 91 * DAY + dt.timedelta(minutes=5))
    assert run_at(START + 91 * DAY).messages_erased == 0
    assert run_at(START + 92 * DAY).messages_erased == 1


def test_message_changelist__resend_of_an_erased_failed_message__skipped_and_said_so(superuser_client) -> None:
    with at(START):
        erased = unsent_message("old-failed", Message.Status.FAILED)
    run_at(START + 91 * DAY)
    with at(START + 92 * DAY):
        resendable = unsent_message("recent-failed", Message.Status.FAILED)
        response = superuser_client.post(
            reverse("admin:kelabooking_message_changelist"),
            {"action": "resend", "_selected_action": [erased.pk, resendable.pk]},
            headers={"Accept-Language": "en"},
            follow=True,
        )
    told = {(message.level, str(message)) for message in response.context["messages"]}
    assert (admin_messages.SUCCESS, "1 message queued again.") in told
    assert (
        admin_messages.WARNING,
        "1 message was not queued again: its recipient and texts were erased after the retention period.",
    ) in told
    statuses = dict(Message.objects.values_list("pk", "status"))
    assert statuses[erased.pk] == Message.Status.FAILED
    assert statuses[resendable.pk] != Message.Status.FAILED  # queued again (and sent, tasks being eager here)


def test_cancellation_reason__erased_with_the_contact_details_ninety_days_after_the_call() -> None:
    with at(START - 3 * DAY):
        slot = SlotFactory(starts_at=START, ends_at=START + dt.timedelta(minutes=45))
        cancelled = BookingFactory.cancelled(
            slot=slot, contact_phone="", cancellation_reason="Asiakas muutti Ruotsiin, puoliso soitti"
        )
    run = run_at(START + 91 * DAY)
    assert run.contacts_erased == 1
    cancelled.refresh_from_db()
    assert cancelled.cancellation_reason == ""
    assert cancelled.contact_erased_at == START + 91 * DAY
    assert (cancelled.status, cancelled.cancelled_at) == (Booking.Status.CANCELLED, cancelled.cancelled_at)


def test_expired_sessions__cleared_nightly_and_counted__a_live_one_kept() -> None:
    store = import_module(django_settings.SESSION_ENGINE).SessionStore
    with at(START):
        expired = store()
        expired["booking_draft"] = {"contact_phone": "040 7654321", "description": "Vuokra nousi"}
        expired.set_expiry(60 * 60)
        expired.save()
    with at(START + dt.timedelta(minutes=90)):
        live = store()
        live["booking_draft"] = {"contact_phone": "040 1234567"}
        live.set_expiry(60 * 60)
        live.save()
    dry = run_at(START + dt.timedelta(hours=2), dry_run=True)
    assert dry.sessions_cleared == 1
    run = run_at(START + dt.timedelta(hours=2))
    assert run.sessions_cleared == 1
    assert not store.get_model_class().objects.filter(session_key=expired.session_key).exists()
    assert store.get_model_class().objects.filter(session_key=live.session_key).exists()
    with at(START + dt.timedelta(hours=2)):
        assert store(live.session_key)["booking_draft"] == {"contact_phone": "040 1234567"}


BAD_LIMITS = [
    ("RETENTION_CONTACT_DAYS", 0, "kelabooking.E010"),
    ("RETENTION_CONTACT_DAYS", 100_000_000, "kelabooking.E010"),
    ("RETENTION_CUSTOMER_DAYS", -1, "kelabooking.E011"),
    ("RETENTION_CUSTOMER_DAYS", 29, "kelabooking.E011"),
    ("RETENTION_MESSAGE_DAYS", 0, "kelabooking.E012"),
    ("RETENTION_MESSAGE_DAYS", 3654, "kelabooking.E012"),
    ("RETENTION_AUDIT_DAYS", 0, "kelabooking.E013"),
    ("RETENTION_AUDIT_DAYS", 364, "kelabooking.E013"),
]


@pytest.mark.parametrize(("setting", "days", "check_id"), BAD_LIMITS)
def test_retention_setting__out_of_its_bounds__refused_by_its_check_and_by_the_job(
    settings, setting, days, check_id
) -> None:
    assert check_retention_limits() == []  # the defaults are within the bounds
    setattr(settings, setting, days)
    errors = check_retention_limits()
    assert [error.id for error in errors] == [check_id]
    assert setting in errors[0].msg
    with at(START):
        CustomerFactory.not_in_register()  # would go with a negative customer period
        audit_event_record(acting=acting_for(), action=AuditEvent.Action.CUSTOMER_OPENED)
    with pytest.raises(ValueError, match=setting), at(START + DAY):
        retention_run()
    assert not RetentionRun.objects.exists()
    assert Customer.objects.count() == 1
    assert AuditEvent.objects.count() == 1


def test_retention_limits__given_directly__refused_out_of_bounds() -> None:
    with pytest.raises(ValueError, match="RETENTION_AUDIT_DAYS"):
        Limits(contact_days=90, customer_days=730, message_days=90, audit_days=0)
    with pytest.raises(ValueError, match="RETENTION_CUSTOMER_DAYS"):
        Limits(contact_days=90, customer_days=-1, message_days=90, audit_days=1826)
    assert Limits(contact_days=1, customer_days=30, message_days=1, audit_days=365).audit_days == 365


def test_partner_entered_customer__opened_by_a_partner_within_the_period__kept_until_two_years_after() -> None:
    with at(START):
        customer = customer_find_or_create(acting=acting_for(), identity_code="010170-123F")  # entered, never booked
    assert customer.source == Customer.Source.ENTERED_BY_PARTNER
    with at(START + 700 * DAY):
        customer_find_or_create(acting=acting_for(), identity_code="010170-123F")  # another partner opens them
    assert run_at(START + 731 * DAY).customers_removed == 0
    assert Customer.objects.filter(pk=customer.pk).exists()
    assert run_at(START + 700 * DAY + 731 * DAY).customers_removed == 1
    assert not Customer.objects.filter(pk=customer.pk).exists()


def test_audit_events__removed_after_five_years_by_the_job_alone__counted_for_the_customer(superuser_client) -> None:
    # In the real past: on PostgreSQL the database itself keeps events younger than the period by its own clock.
    now = clock.now()
    start = now - (5 * 365 + 2) * DAY
    with at(start):
        customer = CustomerFactory(identity_code="131052-308T")
        for _ in range(3):
            audit_event_record(acting=acting_for(), action=AuditEvent.Action.CUSTOMER_OPENED, customer=customer)
    with at(start + 1000 * DAY):
        audit_event_record(acting=acting_for(), action=AuditEvent.Action.CUSTOMER_OPENED, customer=customer)
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()  # no other path
    run = run_at(now)
    assert run.audit_events_removed == 3
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CUSTOMER_OPENED).count() == 1
    removed = RemovedAuditEvents.objects.get()
    assert (removed.events, removed.oldest, removed.customer_digest) == (3, start, customer.identity_code_digest)
    # The run is itself audited, with its counts.
    retention_event = AuditEvent.objects.get(action=AuditEvent.Action.RETENTION_RUN)
    assert retention_event.details["audit_events_removed"] == 3
    assert retention_event.actor is None
    page = superuser_client.post(
        reverse("admin:partners_auditevent_customer"),
        {"identity_code": "131052-308T"},
        headers={"Accept-Language": "en"},
    )
    html = page.content.decode()
    assert "3 older events of this customer" in html
    assert "131052-308T" not in html


def test_dry_run__counts_everything_changes_nothing__recorded_not_audited() -> None:
    booking = booking_called_at(START)
    with at(START):
        BookingFactory.held(expires_at=START - DAY)
    before = Booking.objects.count()
    run = run_at(START + 100 * DAY, dry_run=True)
    assert (run.dry_run, run.expired_holds, run.contacts_erased) == (True, 1, 1)
    assert Booking.objects.count() == before
    booking.refresh_from_db()
    assert booking.contact_phone
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.RETENTION_RUN).exists()
    assert RetentionRun.objects.get().finished_at is not None


def test_command__dry_run_and_real__prints_a_summary_and_records_each_run(capsys) -> None:
    booking_called_at(START)
    with at(START + 100 * DAY):
        call_command("apply_retention", "--dry-run")
        dry = capsys.readouterr().out
        call_command("apply_retention")
        real = capsys.readouterr().out
    assert "1  bookings' typed contact details would be erased" in dry
    assert "1  bookings' typed contact details erased" in real
    assert list(RetentionRun.objects.order_by("started_at").values_list("dry_run", flat=True)) == [True, False]


def test_command__while_the_nightly_run_holds_the_job__refuses_and_erases_nothing(capsys) -> None:
    """The nightly task took the job's lock and `apply_retention` did not: both could run at once."""
    booking_called_at(START)
    with at(START + 100 * DAY):
        with retention_job_lock() as holds:  # the nightly run, holding the job
            assert holds
            with pytest.raises(CommandError, match="Another retention run is in progress"):
                call_command("apply_retention")
            call_command("apply_retention", "--dry-run")  # a dry run changes nothing: it may run
        assert Booking.objects.exclude(contact_phone="").count() == 1
        assert list(RetentionRun.objects.values_list("dry_run", flat=True)) == [True]
        call_command("apply_retention")  # the lock is free again
    assert Booking.objects.exclude(contact_phone="").count() == 0


def test_beat__runs_the_retention_job_nightly(settings) -> None:
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "kelabooking.tasks.retention_run_task" in tasks
    from kelabooking.tasks import retention_run_task

    with at(START):
        BookingFactory.held(expires_at=START - DAY)
        assert retention_run_task.delay().get()["expired_holds"] == 1


def test_customer_last_opened_at__migration__taken_from_the_latest_opening_in_the_audit_trail() -> None:
    from django.apps import apps

    migration = import_module("bookings.migrations.0010_add_customer_last_opened_at")
    with at(START):
        opened, never = CustomerFactory.not_in_register(), CustomerFactory.not_in_register()
        audit_event_record(acting=acting_for(), action=AuditEvent.Action.CUSTOMER_OPENED, customer=opened)
    with at(START + 100 * DAY):
        audit_event_record(acting=acting_for(), action=AuditEvent.Action.CUSTOMER_OPENED, customer=opened)
        audit_event_record(acting=acting_for(), action=AuditEvent.Action.BOOKING_HELD, customer=never)
    migration.last_openings_from_the_audit_trail(apps, None)
    assert dict(Customer.objects.values_list("pk", "last_opened_at")) == {opened.pk: START + 100 * DAY, never.pk: None}
