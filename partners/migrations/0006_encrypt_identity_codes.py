"""Identity codes encrypted at rest (kelabooking/crypto.py): the partners' own, with a keyed index, and the audit
events' actor snapshot. Audit events also keep the keyed index of their customer's code, so that "who handled this
customer" finds them through that index, also after the retention job has removed the customer.

The audit trail stays append-only. PostgreSQL's trigger now lets through only the two maintenance paths, each of
which marks its own transaction with a transaction-local setting (`set_config(..., true)`):
`kelabooking.audit_maintenance = 'retention'` (removing expired events and detaching removed customers) and
`= 'rotation'` (re-encrypting the actor snapshot and re-indexing with new keys; no delete).
"""

import django.db.models.deletion
from django.db import migrations, models

import kelabooking.fields
import partners.models

APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION partners_auditevent_append_only() RETURNS trigger AS $$
DECLARE
    maintenance text := current_setting('kelabooking.audit_maintenance', true);
BEGIN
    IF TG_OP = 'UPDATE' AND maintenance IN ('retention', 'rotation') THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' AND maintenance = 'retention' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql
"""
STRICT_FUNCTION = """
CREATE OR REPLACE FUNCTION partners_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql
"""
def _mark_rotation(schema_editor) -> None:
    """Let this transaction's UPDATEs of audit events through the trigger (installed first, below)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SELECT set_config('kelabooking.audit_maintenance', 'rotation', true)")


def encrypt_codes(apps, schema_editor):
    from kelabooking import crypto

    User = apps.get_model("partners", "User")
    for user in User.objects.exclude(identity_code=None).only("pk", "identity_code").iterator(chunk_size=500):
        User.objects.filter(pk=user.pk).update(
            identity_code_encrypted=user.identity_code, identity_code_digest=crypto.digest(user.identity_code)
        )
    AuditEvent = apps.get_model("partners", "AuditEvent")
    Customer = apps.get_model("bookings", "Customer")
    _mark_rotation(schema_editor)
    for event in AuditEvent.objects.exclude(actor_identity_code="").only("pk", "actor_identity_code").iterator(
        chunk_size=500
    ):
        AuditEvent.objects.filter(pk=event.pk).update(actor_identity_code_encrypted=event.actor_identity_code)
    for customer in Customer.objects.only("pk", "identity_code_digest").iterator(chunk_size=500):
        AuditEvent.objects.filter(customer_id=customer.pk).update(customer_digest=customer.identity_code_digest)


def decrypt_codes(apps, schema_editor):
    User = apps.get_model("partners", "User")
    for user in User.objects.filter(identity_code_encrypted__isnull=False).only("pk", "identity_code_encrypted"):
        User.objects.filter(pk=user.pk).update(identity_code=user.identity_code_encrypted)
    AuditEvent = apps.get_model("partners", "AuditEvent")
    _mark_rotation(schema_editor)
    for event in AuditEvent.objects.only("pk", "actor_identity_code_encrypted").iterator(chunk_size=500):
        if event.actor_identity_code_encrypted:
            AuditEvent.objects.filter(pk=event.pk).update(actor_identity_code=event.actor_identity_code_encrypted)


def allow_maintenance(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY_FUNCTION)


def refuse_all(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(STRICT_FUNCTION)


class Migration(migrations.Migration):
    # Each step commits on its own: PostgreSQL refuses to ALTER a table in the transaction that updated its rows
    # while their deferred foreign key checks are pending. The data step is one transaction of its own.
    atomic = False

    dependencies = [
        ("partners", "0005_add_booking_moved_action"),
        ("bookings", "0008_encrypt_customer_identity_codes"),
    ]

    operations = [
        migrations.RunPython(allow_maintenance, refuse_all, atomic=True, elidable=False),
        migrations.AlterModelManagers(name="user", managers=[("objects", partners.models.PartnerUserManager())]),
        migrations.AddField(
            model_name="user",
            name="identity_code_encrypted",
            field=kelabooking.fields.EncryptedIdentityCodeField(
                blank=True, editable=False, null=True, verbose_name="personal identity code"
            ),
        ),
        migrations.AddField(
            model_name="user",
            name="identity_code_digest",
            field=kelabooking.fields.IdentityCodeDigestField(null=True, unique=True, verbose_name="identity code index"),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="actor_identity_code_encrypted",
            field=kelabooking.fields.EncryptedIdentityCodeField(blank=True, verbose_name="actor's identity code"),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="customer_digest",
            field=models.CharField(blank=True, max_length=64, verbose_name="customer's identity code index"),
        ),
        migrations.RunPython(encrypt_codes, decrypt_codes, atomic=True, elidable=False),
        migrations.AlterField(
            model_name="user",
            name="identity_code",
            field=models.CharField(max_length=11, null=True, verbose_name="personal identity code"),
        ),
        migrations.RemoveField(model_name="user", name="identity_code"),
        migrations.RenameField(model_name="user", old_name="identity_code_encrypted", new_name="identity_code"),
        migrations.RemoveField(model_name="auditevent", name="actor_identity_code"),
        migrations.RenameField(
            model_name="auditevent", old_name="actor_identity_code_encrypted", new_name="actor_identity_code"
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="customer",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="audit_events",
                to="bookings.customer",
                verbose_name="customer",
            ),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["customer_digest", "-created_at"], name="audit_customer_digest_time_idx"),
        ),
    ]
