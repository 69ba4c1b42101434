"""Retention: personal data kept only as long as needed (README, "Retention"). Run nightly by beat
(`retention_run_task`) and by `manage.py apply_retention [--dry-run]`; every run is recorded as a `RetentionRun`, and
a real run is itself an audit event.

Each rule, with its setting (days):

- expired holds are removed (they stopped counting when they expired; this is hygiene);
- RETENTION_CONTACT_DAYS after the call, the contact details, description and cancellation reason typed for a
  booking are erased;
- RETENTION_CUSTOMER_DAYS after a customer entered by a partner was created, after that customer's last call and
  after a partner last opened them, the customer is removed; the bookings stay, without the customer, as statistics;
- RETENTION_MESSAGE_DAYS after a message was sent, or after a message never sent (failed, or still pending) was
  queued, its recipient and texts are erased (the status stays; a pending one becomes failed: it is never sent);
- expired sessions are cleared (a session holds what a partner typed, until it expires);
- RETENTION_AUDIT_DAYS after an audit event, it is removed, and how many of each customer's went is kept
  (`RemovedAuditEvents`) so that "who handled this customer" still says so. Only this job removes audit events.

Each rule runs in its own transaction, so a failure leaves the rules before it done and the rest untouched. Every
setting is bounded (`BOUNDS`): the start-up checks refuse a setting out of its bounds (kelabooking/checks.py), and so
does `Limits` itself, so that no call can empty the audit trail or remove a customer with an upcoming booking.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import import_module
from typing import NamedTuple

from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import transaction
from django.db.models import Count, Max, Min, Q

from kelabooking import clock
from kelabooking.models import Message, RetentionRun

RULES = (
    "expired_holds",
    "contacts_erased",
    "customers_removed",
    "messages_erased",
    "sessions_cleared",
    "audit_events_removed",
)


class Bound(NamedTuple):
    setting: str
    least: int
    most: int
    why: str  # why the least is what it is


TEN_YEARS = 3653  # days: longer than any of these periods should be, and far from where the dates overflow
# The days each setting may say (README, "Retention"), by the field of `Limits` it sets.
BOUNDS = {
    "contact_days": Bound("RETENTION_CONTACT_DAYS", 1, TEN_YEARS, "Kela needs them until the call is over"),
    "customer_days": Bound(
        "RETENTION_CUSTOMER_DAYS", 30, TEN_YEARS, "fewer would remove customers a partner is still working with"
    ),
    "message_days": Bound("RETENTION_MESSAGE_DAYS", 1, TEN_YEARS, "a message is retried for hours before it fails"),
    "audit_days": Bound(
        "RETENTION_AUDIT_DAYS", 365, TEN_YEARS, "the audit trail tells who handled a customer for at least a year"
    ),
}


def limit_problem(name: str, days: object) -> str:
    """Why `days` cannot be the `Limits` field `name` (out of its bounds, or not a whole number), or ""."""
    bound = BOUNDS[name]
    if isinstance(days, int) and not isinstance(days, bool) and bound.least <= days <= bound.most:
        return ""
    return (
        f"{bound.setting} is {days!r}: it must be a whole number of days from {bound.least} to {bound.most} "
        f"(at least {bound.least}: {bound.why})."
    )


@dataclass(frozen=True)
class Limits:
    """The retention periods in days; refused (ValueError) when one is out of its bounds (`BOUNDS`)."""

    contact_days: int
    customer_days: int
    message_days: int
    audit_days: int

    def __post_init__(self) -> None:
        problems = [limit_problem(name, days) for name, days in self.__dict__.items()]
        if any(problems):
            raise ValueError(" ".join(problem for problem in problems if problem))

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
        "sessions_cleared": lambda: _sessions(now=now, dry_run=dry_run),
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


# What was typed for a booking, erased: the contact details, the matter's description and the reason for cancelling.
TYPED_ERASED = {"contact_phone": "", "contact_email": "", "description": "", "cancellation_reason": ""}


def _contacts(*, now: dt.datetime, before: dt.datetime, dry_run: bool) -> int:
    from bookings.models import Booking

    typed = Booking.objects.filter(slot__starts_at__lt=before, contact_erased_at=None).exclude(
        contact_phone="", contact_email="", description="", cancellation_reason=""
    )
    if dry_run:
        return typed.count()
    with transaction.atomic():
        return typed.update(**TYPED_ERASED, contact_erased_at=now)


def _customers(*, before: dt.datetime, now: dt.datetime, dry_run: bool) -> int:
    """Customers entered by partners, created before `before`, whose every booking's call is before it too, who hold
    no time and whom no partner has opened since."""
    from bookings.models import Booking, Customer

    recent = (
        Q(last_opened_at__gte=before)
        | Q(bookings__slot__starts_at__gte=before)
        | Q(bookings__status=Booking.Status.HELD)
    )
    stale = Customer.objects.filter(source=Customer.Source.ENTERED_BY_PARTNER, created_at__lt=before).exclude(recent)
    if dry_run:
        return stale.count()
    with transaction.atomic():
        ids = list(stale.select_for_update().values_list("pk", flat=True))
        # The bookings stay as statistics: without the customer, and without what was typed for them.
        Booking.objects.filter(customer_id__in=ids).update(customer=None, **TYPED_ERASED, contact_erased_at=now)
        # Their audit events stay (found by their own identity code index) and lose only the link: one of the changes
        # the append-only trail takes (partners/database.py).
        Customer.objects.filter(pk__in=ids).delete()
    return len(ids)


def _messages(*, before: dt.datetime, now: dt.datetime, dry_run: bool) -> int:
    """Sent messages, counted from when they were sent; failed and pending ones, from when they were queued. A message
    still pending after the whole period would tell of a call long past: it becomes failed, never to be sent (nor
    resent: `message_resend`). One that a worker holds a live claim on is left to the worker until the next run."""
    kept = Message.objects.filter(erased_at=None)
    sent = kept.filter(status=Message.Status.SENT, sent_at__lt=before)
    unsent = (
        kept.exclude(status=Message.Status.SENT)
        .filter(created_at__lt=before)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
    )
    if dry_run:
        return sent.count() + unsent.count()
    erased = {
        "recipient": "",
        "subject": "",
        "body": "",
        "body_html": "",
        "calendar": "",
        "context": {},
        "last_error": "",
        "erased_at": now,
    }
    with transaction.atomic():
        return sent.update(**erased) + unsent.update(**erased, status=Message.Status.FAILED, claimed_until=None)


def _sessions(*, now: dt.datetime, dry_run: bool) -> int:
    """Expired sessions, from the configured session store. A database store's are counted as they go (what its
    `clear_expired` does); any other store clears its own (a cache's entries expire by themselves) uncounted."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if not issubclass(store, DatabaseSessionStore):  # cached_db is one: it keeps every session in the database too
        if not dry_run:
            store.clear_expired()
        return 0
    expired = store.get_model_class().objects.filter(expire_date__lt=now)
    if dry_run:
        return expired.count()
    with transaction.atomic():
        deleted, _by_model = expired.delete()
    return deleted


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
