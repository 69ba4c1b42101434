"""`manage.py rotate_identity_keys`: re-encrypt every stored identity code with the newest key and re-index it with
the newest HMAC key (kelabooking/crypto.py). `--new-keys` prints a fresh key of each kind to put in front."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.utils import translation

from kelabooking import crypto, fields

BATCH = 500


class Command(BaseCommand):
    help = (
        "Rotate the identity code keys. Put a new key first in IDENTITY_CODE_ENCRYPTION_KEYS and/or "
        "IDENTITY_CODE_HMAC_KEYS (keep the old ones after it), run this, then drop the old keys it no longer names."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--new-keys",
            action="store_true",
            help="Print a new encryption key and a new HMAC key, and only them (with development keys under var/, "
            "put them first there and rotate).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count the rows that need rewriting; change nothing."
        )

    def handle(self, *args: Any, new_keys: bool, dry_run: bool, **options: Any) -> None:
        if new_keys and not self._new_keys():
            return
        # A rotation may refuse this connection (the audit trail's: any role but the database owner's).
        refusals = (
            [] if dry_run else [rotation.refusal(connection) for rotation in fields.key_rotations() if rotation.refusal]
        )
        if any(refusals):
            raise CommandError("\n".join(dict.fromkeys(filter(None, refusals))))
        counts = rotate(dry_run=dry_run)
        verb = "need rewriting" if dry_run else "rewritten"
        for name, count in counts.items():
            self.stdout.write(f"{count:>8}  {name} {verb}")
        for where, key_id, setting in older_keys_in_use():
            self.stdout.write(f"{where} holds values under key {key_id}: keep that key in {setting}.")
        self.stdout.write(
            self.style.SUCCESS("Every stored identity code is under the newest keys." if not dry_run else "Dry run.")
        )

    def _new_keys(self) -> bool:
        """Print the new keys, or put them first in the development key files: whether to rotate now."""
        encryption, hmac_key = crypto.new_encryption_key(), crypto.new_hmac_key()
        configured = settings.IDENTITY_CODE_ENCRYPTION_KEYS or settings.IDENTITY_CODE_HMAC_KEYS
        if settings.IDENTITY_CODE_GENERATE_KEYS and not configured:
            crypto.prepend_development_keys(encryption=encryption, hmac_key=hmac_key)
            self.stdout.write(f"New development keys put first under {settings.IDENTITY_CODE_KEY_DIR}.")
            return True
        self.stdout.write(f"New encryption key (key {crypto.key_id(encryption)}): {encryption}")
        self.stdout.write(f"New HMAC key (key {crypto.key_id(hmac_key)}): {hmac_key}")
        self.stdout.write(
            "Put each first in IDENTITY_CODE_ENCRYPTION_KEYS and IDENTITY_CODE_HMAC_KEYS of every process, keeping "
            "the keys they hold now after them; restart every process; then run this command again."
        )
        return False


def rotate(*, dry_run: bool = False) -> dict[str, int]:
    """Rewrite the rows not under the newest keys, each row in its own small transaction. Idempotent.

    A row whose keyed index is computed from its own encrypted code is saved again (`fields.resaved_columns`); another
    keyed column is rewritten by the rotation its app registered (`fields.KeyRotation`), or kept under its key (the
    indexes of removed customers: `older_keys_in_use` names the keys they need). Refused, naming the key and the
    column, while any stored value is under a key that is not configured: such a value can be neither read nor
    re-indexed.
    """
    problems = fields.every_unconfigured_key()
    if problems:
        raise CommandError("\n".join(str(problem) for problem in problems))
    newest_code, newest_index = crypto.encryption_key_ids()[0], crypto.hmac_key_ids()[0]
    counts = {}
    for model, index in fields.resaved_columns():
        with translation.override(None):
            label = str(model._meta.verbose_name_plural)
        stale = (
            model._base_manager.filter(**{f"{index.source}__isnull": False})
            .annotate(code_key=fields.key_id_of(index.source), index_key=fields.key_id_of(index.name))
            .exclude(code_key=newest_code, index_key=newest_index)
        )
        if dry_run:
            counts[label] = stale.count()
            continue
        counts[label] = 0
        for row in stale.only("pk", index.source, index.name).order_by("pk").iterator(BATCH):
            counts[label] += 1
            row.save(update_fields=[index.source, index.name])  # encrypted and indexed anew
    for rotation in fields.key_rotations():
        counts[rotation.label] = rotation.rewrite(dry_run=dry_run)
    return counts


def older_keys_in_use() -> list[tuple[str, str, str]]:
    """(table.column, key id, setting) for each key other than the newest that stored values still name: what must
    stay configured (e.g. the HMAC key of audit events of customers removed before the rotation)."""
    return [
        (fields.column_label(model, field), key_id, field.key_setting)
        for model, field in fields.keyed_columns()
        for key_id in fields.stored_key_ids(model, field)
        if key_id != field.configured_key_ids()[0]
    ]
