"""The audit trail's retention rule (kelabooking/retention.py; docs/data-protection.md, "Retention"), and the audit
event of each real retention run."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Count, Max, Min

from kelabooking.models import RetentionRun
from kelabooking.retention import RetentionRule, cutoff, retention_rules
from partners.context import ActingContext, RequestMeta
from partners.models import AuditEvent, RemovedAuditEvents
from partners.services import audit_event_record


def audit_events_removed(run: RetentionRun) -> int:
    """Events older than RETENTION_AUDIT_DAYS; how many of each customer's went is kept (`RemovedAuditEvents`)."""
    with transaction.atomic(durable=True):
        # The database removes no event younger than the period it knows (partners/database.py): count with its limit.
        before = AuditEvent.objects.expiry_cutoff(cutoff(run, "audit_days"))
        expired = AuditEvent.objects.filter(created_at__lt=before)
        if run.dry_run:
            return expired.count()
        per_customer = (
            expired.exclude(customer_digest="")
            .values("customer_digest")
            .annotate(events=Count("pk"), oldest=Min("created_at"), newest=Max("created_at"))
            .order_by()
        )
        RemovedAuditEvents.objects.bulk_create(RemovedAuditEvents(run=run, **row) for row in per_customer)
        return AuditEvent.objects.expire(before=before)


RETENTION_RULES = (RetentionRule("audit_events_removed", audit_events_removed, "audit events", "removed"),)


def retention_run_audit(*, run: RetentionRun, **kwargs: Any) -> None:
    """`retention_run_finished`: a real run is an audit event (an error if a rule failed), with what each rule did."""
    if run.dry_run:
        return
    audit_event_record(
        acting=ActingContext(meta=RequestMeta(request_id=f"retention-run-{run.pk}")),  # the system acts
        action=AuditEvent.Action.RETENTION_RUN,
        outcome=AuditEvent.Outcome.ERROR if run.error else AuditEvent.Outcome.SUCCESS,
        details={"run": run.pk, **{rule.count: getattr(run, rule.count) for rule in retention_rules()}},
    )
