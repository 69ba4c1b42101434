"""`manage.py rotate_identity_keys`: re-encrypt every stored identity code with the newest key and re-index it with
the newest HMAC key (kelabooking/crypto.py). `--new-keys` prints a fresh key of each kind to put in front."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.models import TextField
from django.db.models.functions import Cast

from kelabooking import crypto
from partners.database import may_rewrite_audit_events

BATCH = 500


class Command(BaseCommand):
    help = (
        "Rotate the identity code keys. Put a new key first in IDENTITY_CODE_ENCRYPTION_KEYS and/or "
        "IDENTITY_CODE_HMAC_KEYS (keep the old ones after it), run this, then drop the old keys."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--new-keys",
            action="store_true",
            help="Print a new encryption key and a new HMAC key (and, with development keys under var/, put them "
            "first there), then rotate.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count the rows that need rewriting; change nothing."
        )

    def handle(self, *args: Any, new_keys: bool, dry_run: bool, **options: Any) -> None:
        if new_keys:
            self._new_keys()
        if not dry_run and not may_rewrite_audit_events(connection):
            raise CommandError(
                "This database role may not rewrite audit events: run rotate_identity_keys as the database owner, "
                'the role that runs migrate (README, "Database roles").'
            )
        counts = rotate(dry_run=dry_run)
        verb = "need rewriting" if dry_run else "rewritten"
        for name, count in counts.items():
            self.stdout.write(f"{count:>8}  {name} {verb}")
        self.stdout.write(
            self.style.SUCCESS("Every stored identity code is under the newest keys." if not dry_run else "Dry run.")
        )

    def _new_keys(self) -> None:
        encryption, hmac_key = crypto.new_encryption_key(), crypto.new_hmac_key()
        if settings.IDENTITY_CODE_ENCRYPTION_KEYS or settings.IDENTITY_CODE_HMAC_KEYS:
            self.stdout.write(f"IDENTITY_CODE_ENCRYPTION_KEYS={encryption},{','.join(crypto.encryption_keys())}")
            self.stdout.write(f"IDENTITY_CODE_HMAC_KEYS={hmac_key},{','.join(crypto.hmac_keys())}")
            self.stdout.write("Set these in the environment of every process, then run this command again.")
            raise SystemExit(0)
        crypto.prepend_development_keys(encryption=encryption, hmac_key=hmac_key)
        self.stdout.write(f"New development keys put first under {settings.IDENTITY_CODE_KEY_DIR}.")


def rotate(*, dry_run: bool = False) -> dict[str, int]:
    """Rewrite the rows not under the newest keys, each row in its own small transaction. Idempotent."""
    from bookings.models import Customer
    from partners.models import AuditEvent, User

    counts = {"partners": 0, "customers": 0, "audit events' actor codes": 0, "audit events' customer indexes": 0}
    for model, label in ((User, "partners"), (Customer, "customers")):
        for row in _with_tokens(model, "identity_code", "identity_code_digest"):
            if row.identity_code_digest == crypto.digest(row.identity_code) and crypto.is_current(row.token):
                continue
            counts[label] += 1
            if not dry_run:
                row.save(update_fields=["identity_code", "identity_code_digest"])  # encrypted and indexed anew
    for event in _with_tokens(AuditEvent, "actor_identity_code"):
        if crypto.is_current(event.token):
            continue
        counts["audit events' actor codes"] += 1
        if not dry_run:
            AuditEvent.objects.filter(pk=event.pk).rewrite(actor_identity_code=event.actor_identity_code)
    # Events of a customer still here take its new index; those of removed customers keep theirs (an old HMAC key
    # stays configured while such events are within RETENTION_AUDIT_DAYS: README, "Identity code keys").
    for customer in Customer.objects.only("pk", "identity_code_digest").iterator(chunk_size=BATCH):
        stale = AuditEvent.objects.filter(customer_id=customer.pk).exclude(
            customer_digest=customer.identity_code_digest
        )
        if dry_run:
            counts["audit events' customer indexes"] += stale.count()
        elif stale.exists():
            counts["audit events' customer indexes"] += stale.rewrite(customer_digest=customer.identity_code_digest)
    return counts


def _with_tokens(model: Any, field: str, *also: str) -> Any:
    """The rows holding a code, each with its stored token as `token` (cast to text: read as stored, not decrypted)."""
    return (
        model.objects.annotate(token=Cast(field, TextField()))
        .filter(token__isnull=False)
        .exclude(token="")
        .only("pk", field, *also)
        .order_by("pk")
        .iterator(chunk_size=BATCH)
    )
