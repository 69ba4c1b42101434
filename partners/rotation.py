"""How `rotate_identity_keys` rewrites the audit trail's keyed columns (kelabooking/fields.py, `KeyRotation`): the
append-only table takes only this change, through `AuditEventQuerySet.rewrite`, and on PostgreSQL only from the
database owner's role (partners/database.py)."""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F

from kelabooking import crypto, fields
from partners.database import may_rewrite_audit_events
from partners.models import AuditEvent

BATCH = 500


def actor_codes_rewrite(*, dry_run: bool) -> int:
    """The actors' identity codes of events not encrypted with the newest key, encrypted with it."""
    stale = (
        AuditEvent.objects.annotate(code_key=fields.key_id_of("actor_identity_code"))
        .filter(code_key__gt="")
        .exclude(code_key=crypto.encryption_key_ids()[0])
    )
    if dry_run:
        return stale.count()
    rewritten = 0
    for event in stale.only("pk", "actor_identity_code").order_by("pk").iterator(BATCH):
        rewritten += AuditEvent.objects.filter(pk=event.pk).rewrite(actor_identity_code=event.actor_identity_code)
    return rewritten


def customer_indexes_rewrite(*, dry_run: bool) -> int:
    """Events of a customer still here take the customer's (new) index; those of removed customers keep theirs (an old
    HMAC key stays configured while such events are within RETENTION_AUDIT_DAYS: docs/data-protection.md, "Identity
    codes at rest")."""
    stale = AuditEvent.objects.filter(customer__isnull=False).exclude(
        customer_digest=F("customer__identity_code_digest")
    )
    if dry_run:
        return stale.count()
    customers = stale.order_by("customer_id").values_list("customer_id", "customer__identity_code_digest").distinct()
    return sum(
        AuditEvent.objects.filter(customer_id=customer_id)
        .exclude(customer_digest=digest)
        .rewrite(customer_digest=digest)
        for customer_id, digest in list(customers)
    )


def audit_rewrite_refusal(connection: BaseDatabaseWrapper) -> str:
    if may_rewrite_audit_events(connection):
        return ""
    return (
        "This database role may not rewrite audit events: run rotate_identity_keys as the database owner, "
        'the role that runs migrate (docs/data-protection.md, "Database roles").'
    )


KEY_ROTATIONS = (
    fields.KeyRotation(
        "audit events' actor codes", AuditEvent, "actor_identity_code", actor_codes_rewrite, audit_rewrite_refusal
    ),
    fields.KeyRotation(
        "audit events' customer indexes", AuditEvent, "customer_digest", customer_indexes_rewrite, audit_rewrite_refusal
    ),
)
