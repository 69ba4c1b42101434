"""Retention (kelabooking/retention.py): each rule driven with a fixed clock, the run recorded and audited, the dry run
changing nothing, and "who handled this customer" still telling what was removed."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse

from bookings.models import Booking, Customer
from kelabooking import clock
from kelabooking.models import Message, RetentionRun
from kelabooking.retention import retention_run
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
            kind=Message.Kind.CONFIRMATION,
            channel=Message.Channel.SMS,
            recipient="+358401234567",
            language="fi",
            subject="",
            body="Aika varattu",
            status=Message.Status.SENT,
            sent_at=START,
            next_attempt_at=START,
        )
        failed = Message.objects.create(
            key="old-failed",
            kind=Message.Kind.CONFIRMATION,
            channel=Message.Channel.EMAIL,
            recipient="a@example.org",
            language="fi",
            subject="Aika",
            body="Aika varattu",
            status=Message.Status.FAILED,
            next_attempt_at=START,
        )
    run = run_at(START + 91 * DAY)
    assert run.messages_erased == 1
    sent.refresh_from_db()
    failed.refresh_from_db()
    assert (sent.recipient, sent.body, sent.status, sent.sent_at) == ("", "", Message.Status.SENT, START)
    assert sent.erased_at == START + 91 * DAY
    assert failed.body == "Aika varattu"  # not sent: kept for the staff who resend


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


def test_beat__runs_the_retention_job_nightly(settings) -> None:
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "kelabooking.tasks.retention_run_task" in tasks
    from kelabooking.tasks import retention_run_task

    with at(START):
        BookingFactory.held(expires_at=START - DAY)
        assert retention_run_task.delay().get()["expired_holds"] == 1
