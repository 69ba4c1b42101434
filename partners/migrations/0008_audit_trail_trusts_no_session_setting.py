"""The audit trail trusts nothing a session can set (docs/data-protection.md, "Database roles").

Before this, PostgreSQL's append-only trigger let any UPDATE or DELETE through a transaction that had set
`kelabooking.audit_maintenance`, which every session of the app's role could set. Now the trigger decides by the
change itself, and the roles decide who may make it:

- an event is deleted only once it is older than the audit retention period the database knows
  (`partners_audit_retention()`, which every `migrate` sets from RETENTION_AUDIT_DAYS);
- an update may only detach a removed customer (`customer_id` to NULL, the event keeps the customer's index), or
  replace the encrypted actor code and the customer's index (key rotation), and nothing else of the row;
- the app's role (DATABASE_APP_ROLE) may only SELECT and INSERT events and null the customer link; it removes expired
  events through `partners_auditevent_expire()`, which runs as the owner and removes nothing younger than the period.
  Key rotation runs as the owner (the role that runs `migrate`).

SQLite, the embedded default, has no triggers here: the model and its queryset refuse there.
"""

from django.db import migrations

RETENTION_FUNCTION = """
CREATE OR REPLACE FUNCTION partners_audit_retention() RETURNS interval
LANGUAGE sql STABLE AS $$ SELECT interval '1826 days' $$
"""
APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION partners_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.created_at < now() - partners_audit_retention() THEN
            RETURN OLD;
        END IF;
    ELSIF NEW.customer_id IS NULL AND to_jsonb(NEW) - 'customer_id' = to_jsonb(OLD) - 'customer_id' THEN
        RETURN NEW;
    ELSIF to_jsonb(NEW) - 'actor_identity_code' - 'customer_digest'
          = to_jsonb(OLD) - 'actor_identity_code' - 'customer_digest' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql
"""
EXPIRE_FUNCTION = """
CREATE OR REPLACE FUNCTION partners_auditevent_expire(before timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    removed bigint;
BEGIN
    DELETE FROM partners_auditevent WHERE created_at < least(before, now() - partners_audit_retention());
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END;
$$
"""
EXPIRE_PRIVATE = "REVOKE ALL ON FUNCTION partners_auditevent_expire(timestamptz) FROM PUBLIC"

# partners 0006's function, for going back.
MARKED_MAINTENANCE_FUNCTION = """
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


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in (RETENTION_FUNCTION, APPEND_ONLY_FUNCTION, EXPIRE_FUNCTION, EXPIRE_PRIVATE):
            schema_editor.execute(statement)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(MARKED_MAINTENANCE_FUNCTION)
        schema_editor.execute("DROP FUNCTION IF EXISTS partners_auditevent_expire(timestamptz)")
        schema_editor.execute("DROP FUNCTION IF EXISTS partners_audit_retention()")


class Migration(migrations.Migration):
    dependencies = [
        ("partners", "0007_add_retention"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
