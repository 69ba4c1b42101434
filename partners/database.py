"""The audit trail's protection in PostgreSQL (partners migration 0008; docs/data-protection.md, "Database roles"),
in plain SQL.

The trigger trusts nothing a session can set: it lets through only the three changes the trail ever takes (an
expired event removed, a removed customer detached, a key rotation's new ciphertext and index). The roles decide who
makes them: the app's role reads and appends, nulls the customer link, and removes expired events only through
`partners_auditevent_expire()`; key rotation runs as the owner.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "partners_auditevent"
REMOVED_TABLE = "partners_removedauditevents"


def audit_trail_restrictions(connection: BaseDatabaseWrapper, role: str) -> list[str]:
    """What the app's role may not do to the audit trail (registered with kelabooking.database): it appends events
    but does not choose their ids (one chosen ahead of the sequence would make every later event fail), nulls the
    customer link, and only appends the counts of removed events that "who handled this customer" shows, without
    choosing their ids either (one taken ahead would stop every later retention run)."""
    return [
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {TABLE} FROM {role}",  # and the columns' (PostgreSQL's rule)
        f"GRANT INSERT ({_columns_but_id(connection, TABLE)}) ON {TABLE} TO {role}",
        f"GRANT UPDATE (customer_id) ON {TABLE} TO {role}",
        f"GRANT EXECUTE ON FUNCTION partners_auditevent_expire(timestamptz) TO {role}",
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {REMOVED_TABLE} FROM {role}",
        f"GRANT INSERT ({_columns_but_id(connection, REMOVED_TABLE)}) ON {REMOVED_TABLE} TO {role}",
    ]


def _columns_but_id(connection: BaseDatabaseWrapper, table: str) -> str:
    """The table's columns but `id`, quoted, as the database has them now (a migration back may lack one)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = %s AND column_name <> 'id' ORDER BY ordinal_position",
            [table],
        )
        return ", ".join(connection.ops.quote_name(name) for (name,) in cursor.fetchall())


def audit_retention_set(*, using: str, **kwargs: Any) -> None:
    """post_migrate: the database removes no event younger than RETENTION_AUDIT_DAYS (an int, checked by settings)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    days = int(settings.RETENTION_AUDIT_DAYS)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION partners_audit_retention() RETURNS interval "
            f"LANGUAGE sql STABLE AS $$ SELECT interval '{days} days' $$"
        )


def audit_expiry_cutoff(*, connection: BaseDatabaseWrapper, before: dt.datetime) -> dt.datetime:
    """`before`, or the database's own limit where that is earlier (the same all through one transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT least(%s, now() - partners_audit_retention())", [before])
        return cursor.fetchone()[0]


def audit_events_expire(*, connection: BaseDatabaseWrapper, before: dt.datetime) -> int:
    """Remove the events recorded before `before`, but none younger than the period the database knows."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT partners_auditevent_expire(%s)", [before])
        return cursor.fetchone()[0]


def may_rewrite_audit_events(connection: BaseDatabaseWrapper) -> bool:
    """Whether this connection's role may make key rotation's change to the trail (the owner may; the app's role
    may not)."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT has_column_privilege('{TABLE}', 'customer_digest', 'UPDATE')")
        return cursor.fetchone()[0]
