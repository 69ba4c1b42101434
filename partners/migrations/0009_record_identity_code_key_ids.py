"""Every stored identity code and keyed index records the key that made it (kelabooking/crypto.py): a Fernet token
`<token>` becomes `<key id>:<token>` (the same token; the id of the configured key that decrypts it) and a keyed index
`<64 hex digits>` becomes `<key id>:<the same HMAC in base64url>` (the id of the configured HMAC key that gives it for
the decrypted code). Partners, customers, audit events and the removed-event summaries; reversible.

Audit events (append-only: on PostgreSQL the trigger of partners 0008 lets through a change of these two columns
alone, as key rotation makes it, run as the owner like every migration) have exactly two columns rewritten in place, nothing inserted or deleted, no other column touched:
`actor_identity_code` as above, and `customer_digest`: the customer's own index as now stored for an event whose
customer is still stored (as `rotate_identity_keys` does), and for an event of a removed customer the same HMAC under
the id of the one configured HMAC key (with several configured, which one made it cannot be told: the migration
stops and says so). Reversing it turns both columns back into the old form.
"""

import base64
import hashlib
import hmac
import re

import django.db.models.functions.text
from cryptography.fernet import Fernet, InvalidToken
from django.core.exceptions import ImproperlyConfigured
from django.db import migrations, models
from django.db.models import F, OuterRef, Subquery, TextField, Value
from django.db.models.functions import Cast

import kelabooking.fields

KEY_ID = re.compile(r"[0-9a-f]{8}:")
BATCH = 500


class Keys:
    """The configured keys by id, read when the first stored value needs them (an empty database needs none)."""

    def __init__(self) -> None:
        self._fernets: dict[str, Fernet] | None = None
        self._secrets: dict[str, bytes] | None = None

    @property
    def fernets(self) -> dict[str, Fernet]:
        from kelabooking import crypto

        if self._fernets is None:
            self._fernets = {crypto.key_id(key): Fernet(key) for key in crypto.encryption_keys()}
        return self._fernets

    @property
    def secrets(self) -> dict[str, bytes]:
        from kelabooking import crypto

        if self._secrets is None:
            self._secrets = {crypto.key_id(key): crypto.key_bytes(key) for key in crypto.hmac_keys()}
        return self._secrets

    def token(self, token: str, where: str) -> tuple[str, str]:
        """The token with its key id, and the code it holds."""
        if KEY_ID.match(token):
            fernet = self.fernets.get(token[:8])
            if fernet is None:
                raise ImproperlyConfigured(
                    f"{where}: a code under encryption key {token[:8]}, which is not configured."
                )
            return token, fernet.decrypt(token[9:].encode("ascii")).decode("utf-8")
        for key_id, fernet in self.fernets.items():
            try:
                return f"{key_id}:{token}", fernet.decrypt(token.encode("ascii")).decode("utf-8")
            except InvalidToken:
                continue
        raise ImproperlyConfigured(f"{where}: a code that no configured encryption key decrypts.")

    def index(self, index: str, code: str, where: str) -> str:
        """The keyed index of `code` with its key id: the configured HMAC key that gives it."""
        if KEY_ID.match(index):
            return index
        for key_id, secret in self.secrets.items():
            mac = hmac.new(secret, code.encode("utf-8"), hashlib.sha256).digest()
            if hmac.compare_digest(mac.hex(), index):
                return _with_key_id(key_id, mac)
        raise ImproperlyConfigured(f"{where}: an identity code index that no configured HMAC key gives.")

    def orphan_index(self, index: str, where: str) -> str:
        """The index of a removed customer's code (not known any more): under the one configured HMAC key."""
        if len(self.secrets) != 1:
            raise ImproperlyConfigured(
                f"{where} holds indexes of removed customers, and {len(self.secrets)} HMAC keys are configured: "
                "which one made them cannot be told. Run this migration with IDENTITY_CODE_HMAC_KEYS holding only "
                "the key they were made with."
            )
        return _with_key_id(next(iter(self.secrets)), bytes.fromhex(index))


def _with_key_id(key_id: str, mac: bytes) -> str:
    return f"{key_id}:{base64.urlsafe_b64encode(mac).rstrip(b'=').decode('ascii')}"


def _without_key_id(index: str) -> str:
    if not KEY_ID.match(index):
        return index
    return base64.urlsafe_b64decode(index[9:] + "=").hex()


def _raw(queryset, **fields):
    """(pk, stored text, ...) of the rows holding a value in the first of `fields`, read as stored (not decrypted)."""
    first = next(iter(fields))
    return (
        queryset.annotate(**{name: Cast(column, TextField()) for name, column in fields.items()})
        .filter(**{f"{first}__gt": ""})
        .order_by("pk")
        .values_list("pk", *fields)
        .iterator(chunk_size=BATCH)
    )


def record_key_ids(apps, schema_editor):
    keys = Keys()
    Customer = apps.get_model("bookings", "Customer")
    User = apps.get_model("partners", "User")
    AuditEvent = apps.get_model("partners", "AuditEvent")
    RemovedAuditEvents = apps.get_model("partners", "RemovedAuditEvents")
    for model in (Customer, User):
        where = model._meta.db_table
        for pk, token, index in _raw(model.objects, raw_code="identity_code", raw_index="identity_code_digest"):
            stored, code = keys.token(token, where)
            new_index = keys.index(index, code, where)
            if (stored, new_index) != (token, index):
                model.objects.filter(pk=pk).update(
                    identity_code=Value(stored, output_field=TextField()), identity_code_digest=new_index
                )
    for pk, token in _raw(AuditEvent.objects, raw_code="actor_identity_code"):
        stored, _code = keys.token(token, "partners_auditevent.actor_identity_code")
        if stored != token:
            AuditEvent.objects.filter(pk=pk).update(actor_identity_code=Value(stored, output_field=TextField()))
    own = Customer.objects.filter(pk=OuterRef("customer_id")).values("identity_code_digest")[:1]
    AuditEvent.objects.filter(customer__isnull=False).exclude(
        customer_digest=F("customer__identity_code_digest")
    ).update(customer_digest=Subquery(own))
    removed = (
        (AuditEvent.objects.filter(customer__isnull=True).exclude(customer_digest=""), "partners_auditevent"),
        (RemovedAuditEvents.objects.all(), "partners_removedauditevents"),
    )
    for rows, table in removed:
        for index in set(rows.values_list("customer_digest", flat=True)):
            if not KEY_ID.match(index):
                rows.filter(customer_digest=index).update(
                    customer_digest=keys.orphan_index(index, f"{table}.customer_digest")
                )


def drop_key_ids(apps, schema_editor):
    Customer = apps.get_model("bookings", "Customer")
    User = apps.get_model("partners", "User")
    AuditEvent = apps.get_model("partners", "AuditEvent")
    RemovedAuditEvents = apps.get_model("partners", "RemovedAuditEvents")
    for model in (Customer, User):
        for pk, token, index in _raw(model.objects, raw_code="identity_code", raw_index="identity_code_digest"):
            if KEY_ID.match(token) or KEY_ID.match(index):
                model.objects.filter(pk=pk).update(
                    identity_code=Value(token[9:] if KEY_ID.match(token) else token, output_field=TextField()),
                    identity_code_digest=_without_key_id(index),
                )
    for pk, token in _raw(AuditEvent.objects, raw_code="actor_identity_code"):
        if KEY_ID.match(token):
            AuditEvent.objects.filter(pk=pk).update(actor_identity_code=Value(token[9:], output_field=TextField()))
    for rows in (AuditEvent.objects.exclude(customer_digest=""), RemovedAuditEvents.objects.all()):
        for index in set(rows.values_list("customer_digest", flat=True)):
            if KEY_ID.match(index):
                rows.filter(customer_digest=index).update(customer_digest=_without_key_id(index))


class Migration(migrations.Migration):
    # As in partners 0006: the data step is one transaction of its own, the indexes are built after it commits.
    atomic = False

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("bookings", "0011_record_identity_code_key_ids"),
        ("kelabooking", "0007_add_retention"),
        ("partners", "0008_audit_trail_trusts_no_session_setting"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="customer_digest",
            field=kelabooking.fields.IdentityCodeIndexField(blank=True, verbose_name="customer's identity code index"),
        ),
        migrations.AlterField(
            model_name="removedauditevents",
            name="customer_digest",
            field=kelabooking.fields.IdentityCodeIndexField(
                db_index=True, verbose_name="customer's identity code index"
            ),
        ),
        migrations.RunPython(record_key_ids, drop_key_ids, atomic=True, elidable=False),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                django.db.models.functions.text.Left("actor_identity_code", 8), name="audit_actor_code_key_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                django.db.models.functions.text.Left("customer_digest", 8), name="audit_customer_digest_key_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="removedauditevents",
            index=models.Index(
                django.db.models.functions.text.Left("customer_digest", 8), name="removed_audit_digest_key_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="user",
            index=models.Index(django.db.models.functions.text.Left("identity_code", 8), name="user_code_key_idx"),
        ),
        migrations.AddIndex(
            model_name="user",
            index=models.Index(
                django.db.models.functions.text.Left("identity_code_digest", 8), name="user_digest_key_idx"
            ),
        ),
    ]
