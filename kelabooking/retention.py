"""Retention: personal data kept only as long as needed (README, "Retention"). Run nightly by beat
(`retention_run_task`) and by `manage.py apply_retention [--dry-run]`; every run is recorded as a `RetentionRun`, and
a real run is itself an audit event.

Each rule, with its setting (days):

- expired holds are removed (they stopped counting when they expired; this is hygiene);
- RETENTION_CONTACT_DAYS after the call, the contact details and description typed for a booking are erased;
- RETENTION_CUSTOMER_DAYS after a customer entered by a partner was created and after that customer's last call,
  the customer is removed; the bookings stay, without the customer, as statistics;
- RETENTION_MESSAGE_DAYS after a message was sent, its recipient and texts are erased (the status stays);
- RETENTION_AUDIT_DAYS after an audit event, it is removed, and how many of each customer's went is kept
  (`RemovedAuditEvents`) so that "who handled this customer" still says so. Only this job removes audit events.

Each rule runs in its own transaction, so a failure leaves the rules before it done and the rest untouched.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Min, Q

from kelabooking import clock
from kelabooking.models import Message, RetentionRun

RULES = ("expired_holds", "contacts_erased", "customers_removed", "messages_erased", "audit_events_removed")


@dataclass(frozen=True)
class Limits:
    contact_days: int
    customer_days: int
    message_days: int
    audit_days: int

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            contact_days=settings.RETENTION_CONTACT_DAYS,
            customer_days=settings.RETENTION_CUSTOMER_DAYS,
            message_days=settings.RETENTION_MESSAGE_DAYS,
            audit_days=settings.RETENTION_AUDIT_DAYS,
        )


def retention_run(*, dry_run: bool = False, limits: Limits | None = None) -> RetentionRun:
    """Apply every retention rule once (or, with `dry_run`, count what each would change) and record the run."""
    from partners.context import ActingContext, RequestMeta
    from partners.models import AuditEvent
    from partners.services import audit_event_record

    limits = limits or Limits.from_settings()
    now = clock.now()
    run = RetentionRun.objects.create(started_at=now, dry_run=dry_run, limits=limits.__dict__)
    steps = {
        "expired_holds": lambda: _expired_holds(now=now, dry_run=dry_run),
        "contacts_erased": lambda: _contacts(
            now=now, before=now - dt.timedelta(days=limits.contact_days), dry_run=dry_run
        ),
        "customers_removed": lambda: _customers(
            before=now - dt.timedelta(days=limits.customer_days), now=now, dry_run=dry_run
        ),
        "messages_erased": lambda: _messages(
            before=now - dt.timedelta(days=limits.message_days), now=now, dry_run=dry_run
        ),
        "audit_events_removed": lambda: _audit_events(
            before=now - dt.timedelta(days=limits.audit_days), run=run, dry_run=dry_run
        ),
    }
    try:
        for name, step in steps.items():
            setattr(run, name, step())
            run.save(update_fields=[name])
    except Exception as error:
        run.error = f"{error.__class__.__name__}: {error}"[:2000]
        raise
    finally:
        run.finished_at = clock.now()
        run.save(update_fields=["finished_at", "error"])
        if not dry_run:
            audit_event_record(
                acting=ActingContext(meta=RequestMeta(request_id=f"retention-run-{run.pk}")),  # the system acts
                action=AuditEvent.Action.RETENTION_RUN,
                outcome=AuditEvent.Outcome.ERROR if run.error else AuditEvent.Outcome.SUCCESS,
                details={"run": run.pk, **{name: getattr(run, name) for name in RULES}},
            )
    return run


def _expired_holds(*, now: dt.datetime, dry_run: bool) -> int:
    from bookings.models import Booking

    expired = Booking.objects.filter(status=Booking.Status.HELD, hold_expires_at__lte=now)
    if dry_run:
        return expired.count()
    with transaction.atomic():
        deleted, _by_model = expired.delete()
    return deleted


def _contacts(*, now: dt.datetime, before: dt.datetime, dry_run: bool) -> int:
    from bookings.models import Booking

    typed = Booking.objects.filter(slot__starts_at__lt=before, contact_erased_at=None).exclude(
        contact_phone="", contact_email="", description=""
    )
    if dry_run:
        return typed.count()
    with transaction.atomic():
        return typed.update(contact_phone="", contact_email="", description="", contact_erased_at=now)


def _customers(*, before: dt.datetime, now: dt.datetime, dry_run: bool) -> int:
    """Customers entered by partners, created before `before`, whose every booking's call is before it too."""
    from bookings.models import Booking, Customer

    recent = Q(bookings__slot__starts_at__gte=before) | Q(bookings__status=Booking.Status.HELD)
    stale = Customer.objects.filter(source=Customer.Source.ENTERED_BY_PARTNER, created_at__lt=before).exclude(recent)
    if dry_run:
        return stale.count()
    with transaction.atomic():
        ids = list(stale.select_for_update().values_list("pk", flat=True))
        # The bookings stay as statistics: without the customer, and without what was typed for them.
        Booking.objects.filter(customer_id__in=ids).update(
            customer=None, contact_phone="", contact_email="", description="", contact_erased_at=now
        )
        # Their audit events stay (found by their own identity code index) and lose only the link: one of the changes
        # the append-only trail takes (partners/database.py).
        Customer.objects.filter(pk__in=ids).delete()
    return len(ids)


def _messages(*, before: dt.datetime, now: dt.datetime, dry_run: bool) -> int:
    sent = Message.objects.filter(status=Message.Status.SENT, sent_at__lt=before, erased_at=None)
    if dry_run:
        return sent.count()
    with transaction.atomic():
        return sent.update(
            recipient="", subject="", body="", body_html="", calendar="", context={}, last_error="", erased_at=now
        )


def _audit_events(*, before: dt.datetime, run: RetentionRun, dry_run: bool) -> int:
    from partners.models import AuditEvent, RemovedAuditEvents

    with transaction.atomic(durable=True):
        # The database removes no event younger than the period it knows (partners/database.py): count with its limit.
        before = AuditEvent.objects.expiry_cutoff(before)
        expired = AuditEvent.objects.filter(created_at__lt=before)
        if dry_run:
            return expired.count()
        per_customer = (
            expired.exclude(customer_digest="")
            .values("customer_digest")
            .annotate(events=Count("pk"), oldest=Min("created_at"), newest=Max("created_at"))
            .order_by()
        )
        RemovedAuditEvents.objects.bulk_create(RemovedAuditEvents(run=run, **row) for row in per_customer)
        return AuditEvent.objects.expire(before=before)
