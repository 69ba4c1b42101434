"""Retention: personal data kept only as long as needed (docs/data-protection.md, "Retention"). Run nightly by beat
(`retention_run_task`) and by `manage.py apply_retention [--dry-run]`; every run is recorded as a `RetentionRun`, and
a real run is itself an audit event (the partners app listens to `retention_run_finished`).

Each app registers the rules for its own data in its `AppConfig.ready()` (`retention_rule_register`), and the job runs
what was registered, in the order of the `RetentionRun` columns that count them:

- expired holds are removed (they stopped counting when they expired; this is hygiene) (bookings);
- RETENTION_CONTACT_DAYS after the call, the contact details, description and cancellation reason typed for a
  booking are erased (bookings);
- RETENTION_CUSTOMER_DAYS after a customer entered by a partner was created, after that customer's last call and
  after a partner last opened them, the customer is removed; the bookings stay, without the customer, as statistics
  (bookings);
- RETENTION_MESSAGE_DAYS after a message was sent, or after a message never sent (failed, or still pending) was
  queued, its recipient and texts are erased (the status stays; a pending one becomes failed: it is never sent) (here);
- expired sessions are cleared (a session holds what a partner typed, until it expires) (here);
- RETENTION_AUDIT_DAYS after an audit event, it is removed, and how many of each customer's went is kept
  (`RemovedAuditEvents`) so that "who handled this customer" still says so. Only this job removes audit events
  (partners).

Each rule runs in its own transaction, so a failure leaves the rules before it done and the rest untouched. Every
setting is bounded (`BOUNDS`): the start-up checks refuse a setting out of its bounds (kelabooking/checks.py), and so
does `Limits` itself, so that no call can empty the audit trail or remove a customer with an upcoming booking.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from importlib import import_module
from typing import NamedTuple

from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import transaction
from django.db.models import Q
from django.dispatch import Signal

from kelabooking import clock
from kelabooking.jobs import job_lock
from kelabooking.models import Message, RetentionRun

# Sent when a run has finished, with `run` (its error, if one stopped it, in `run.error`); a real run is audited by
# the partners app's listener.
retention_run_finished = Signal()


class Bound(NamedTuple):
    setting: str
    least: int
    most: int
    why: str  # why the least is what it is


TEN_YEARS = 3653  # days: longer than any of these periods should be, and far from where the dates overflow
# The days each setting may say (docs/data-protection.md, "Retention"), by the field of `Limits` it sets.
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


@dataclass(frozen=True)
class RetentionRule:
    """One rule: `apply(run)` removes or erases what is past its time (with `run.dry_run`, only counts it) and returns
    how many rows it changed, recorded in the run's column `count`. `what` and `done` name it in the command's
    summary ("expired holds" … "removed")."""

    count: str
    apply: Callable[[RetentionRun], int]
    what: str
    done: str


_rules: dict[str, RetentionRule] = {}


def retention_rule_register(rule: RetentionRule) -> None:
    """Add a rule to the retention job; its `count` must be a column of `RetentionRun` that no other rule uses."""
    RetentionRun._meta.get_field(rule.count)  # FieldDoesNotExist: a rule's count needs its column
    if _rules.get(rule.count, rule) != rule:
        raise ValueError(f"Two retention rules count in RetentionRun.{rule.count}")
    _rules[rule.count] = rule


def retention_rules() -> list[RetentionRule]:
    """The registered rules, in the order of their columns in `RetentionRun` (the order the job runs them in)."""
    columns = [field.name for field in RetentionRun._meta.fields]
    return sorted(_rules.values(), key=lambda rule: columns.index(rule.count))


def cutoff(run: RetentionRun, limit: str) -> dt.datetime:
    """The moment before which the `Limits` field `limit` (e.g. "contact_days") lets `run` remove or erase."""
    return run.started_at - dt.timedelta(days=run.limits[limit])


def retention_job_lock() -> AbstractContextManager[bool]:
    """The retention job's lock (kelabooking/jobs.py), which the nightly task and `apply_retention` both take for a
    real run: one run at a time, whoever starts it."""
    return job_lock("retention", lease=dt.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60))


def retention_run(*, dry_run: bool = False, limits: Limits | None = None) -> RetentionRun:
    """Apply every registered retention rule once (or, with `dry_run`, count what each would change) and record the
    run."""
    limits = limits or Limits.from_settings()
    run = RetentionRun.objects.create(started_at=clock.now(), dry_run=dry_run, limits=limits.__dict__)
    try:
        for rule in retention_rules():
            setattr(run, rule.count, rule.apply(run))
            run.save(update_fields=[rule.count])
    except Exception as error:
        run.error = f"{error.__class__.__name__}: {error}"[:2000]
        raise
    finally:
        run.finished_at = clock.now()
        run.save(update_fields=["finished_at", "error"])
        retention_run_finished.send(sender=RetentionRun, run=run)
    return run


def messages_erased(run: RetentionRun) -> int:
    """Sent messages, counted from when they were sent; failed and pending ones, from when they were queued. A message
    still pending after the whole period would tell of a call long past: it becomes failed, never to be sent (nor
    resent: `message_resend`). One that a worker holds a live claim on is left to the worker until the next run."""
    before, now = cutoff(run, "message_days"), run.started_at
    kept = Message.objects.filter(erased_at=None)
    sent = kept.filter(status=Message.Status.SENT, sent_at__lt=before)
    unsent = (
        kept.exclude(status=Message.Status.SENT)
        .filter(created_at__lt=before)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
    )
    if run.dry_run:
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


def sessions_cleared(run: RetentionRun) -> int:
    """Expired sessions, from the configured session store. A database store's are counted as they go (what its
    `clear_expired` does); any other store clears its own (a cache's entries expire by themselves) uncounted."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if not issubclass(store, DatabaseSessionStore):  # cached_db is one: it keeps every session in the database too
        if not run.dry_run:
            store.clear_expired()
        return 0
    expired = store.get_model_class().objects.filter(expire_date__lt=run.started_at)
    if run.dry_run:
        return expired.count()
    with transaction.atomic():
        deleted, _by_model = expired.delete()
    return deleted


# The outbox's and the sessions' rules (registered by kelabooking's AppConfig).
RETENTION_RULES = (
    RetentionRule("messages_erased", messages_erased, "messages' recipients and texts", "erased"),
    RetentionRule("sessions_cleared", sessions_cleared, "expired sessions", "cleared"),
)
