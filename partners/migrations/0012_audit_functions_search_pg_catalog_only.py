"""The audit trail's functions search no schema but `pg_catalog` (and `pg_temp` last), and the app's role's events
carry the database's time (docs/data-protection.md, "Database roles").

- partners 0011 gave the functions the path `<schema>, pg_temp`. Where the app's role may create objects in that
  schema (every role could in `public` before PostgreSQL 15, and a database upgraded from one keeps it), it could
  define `to_jsonb(partners_auditevent)`: a function of the exact argument type wins over `pg_catalog`'s polymorphic
  one wherever it is on the path, so the append-only trigger would call it, as the owner whenever the owner's key
  rotation updates the trail. Now the path is `pg_catalog, pg_temp` (PostgreSQL never looks for functions or
  operators in `pg_temp`) and the bodies name the schema's own functions and table by schema; `migrate` also takes
  CREATE on the schema from the app's role (kelabooking/database.py).
- An event the app's role inserts gets `created_at` from the database's clock (the statement's start), whatever the
  INSERT says, so that the role cannot date an event into the past or beyond the retention period. The owner's and
  a superuser's inserts keep the time they give (tests that move the app's clock run as those).
"""

from importlib import import_module

from django.db import migrations

EXPIRE_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.partners_auditevent_expire(before timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    removed bigint;
BEGIN
    DELETE FROM {schema}.partners_auditevent
    WHERE created_at < least(before, now() - {schema}.partners_audit_retention());
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END;
$$
"""
APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.partners_auditevent_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.created_at < now() - {schema}.partners_audit_retention() THEN
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
$$
"""
# Who may rewrite the trail (the owner, a superuser) dates its own events; everyone else gets the database's time.
STAMP_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.partners_auditevent_stamp() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT has_column_privilege(TG_RELID, 'customer_digest', 'UPDATE') THEN
        NEW.created_at := statement_timestamp();
    END IF;
    RETURN NEW;
END;
$$
"""
STAMP_TRIGGER = """
CREATE TRIGGER partners_auditevent_stamp BEFORE INSERT ON {schema}.partners_auditevent
FOR EACH ROW EXECUTE FUNCTION {schema}.partners_auditevent_stamp()
"""

# partners 0008's and 0011's, for going back.
OLD_APPEND_ONLY_FUNCTION = import_module(
    "partners.migrations.0008_audit_trail_trusts_no_session_setting"
).APPEND_ONLY_FUNCTION
PINNED = import_module("partners.migrations.0011_pin_audit_functions_search_path")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema = PINNED._schema(schema_editor)
        for statement in (EXPIRE_FUNCTION, APPEND_ONLY_FUNCTION, STAMP_FUNCTION, STAMP_TRIGGER):
            schema_editor.execute(statement.format(schema=schema))


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema = PINNED._schema(schema_editor)
        schema_editor.execute(f"DROP TRIGGER partners_auditevent_stamp ON {schema}.partners_auditevent")
        schema_editor.execute(f"DROP FUNCTION {schema}.partners_auditevent_stamp()")
        schema_editor.execute(OLD_APPEND_ONLY_FUNCTION)
        PINNED.forwards(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("partners", "0011_pin_audit_functions_search_path"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
