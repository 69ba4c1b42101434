"""The audit trail's functions name their tables by schema and search no schema a session controls first.

partners 0008 made `partners_auditevent_expire()` run as the owner (SECURITY DEFINER) with `SET search_path FROM
CURRENT`, that is `"$user", public`. A path that does not name `pg_temp` has PostgreSQL look for tables in the
session's temporary schema *first*, and every role may create temporary tables: the app's role could make a temporary
`partners_auditevent` with a trigger of its own, call the function, and have its trigger run as the owner (which may
alter the real table, or grant itself anything). Now the function's path is the schema the trail lives in, then
`pg_temp` last, and its body names the table and the retention function by schema; the append-only trigger's function
gets the same path. (docs/data-protection.md, "Database roles".)
"""

from importlib import import_module

from django.db import migrations

EXPIRE_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.partners_auditevent_expire(before timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
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
APPEND_ONLY_PATH = "ALTER FUNCTION {schema}.partners_auditevent_append_only() SET search_path = {schema}, pg_temp"

# partners 0008's, for going back.
OLD_EXPIRE_FUNCTION = import_module("partners.migrations.0008_audit_trail_trusts_no_session_setting").EXPIRE_FUNCTION


def _schema(schema_editor) -> str:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        return schema_editor.quote_name(cursor.fetchone()[0])


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema = _schema(schema_editor)
        schema_editor.execute(EXPIRE_FUNCTION.format(schema=schema))
        schema_editor.execute(APPEND_ONLY_PATH.format(schema=schema))


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema = _schema(schema_editor)
        schema_editor.execute(OLD_EXPIRE_FUNCTION)
        schema_editor.execute(f"ALTER FUNCTION {schema}.partners_auditevent_append_only() RESET search_path")


class Migration(migrations.Migration):
    dependencies = [
        ("partners", "0010_add_staff_sign_in"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
