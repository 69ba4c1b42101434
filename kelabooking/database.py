"""The app's database role (docs/data-protection.md, "Database roles"), PostgreSQL only, in plain SQL.

`migrate` runs as the owner of the schema. Web, worker and beat connect as another role, DATABASE_APP_ROLE, to which
every `migrate` grants what the app needs: reading and writing the app's tables, less what the apps take back
(`restrict_app_role`, called from their `AppConfig.ready()`: the audit trail may only be read and appended to). The
app's role owns nothing and may create nothing in the schema, so it can neither alter a table nor drop a trigger, nor
put a function of its own where another role's code would find it. The statements run in one transaction, so that no
moment of a `migrate` leaves the role the broad grants without what the apps take back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

Restriction = Callable[[BaseDatabaseWrapper, str], Iterable[str]]
# A role name as `CREATE ROLE` takes it unquoted: it is written into SQL statements (quoted, but never escaped).
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_restrictions: list[Restriction] = []


def restrict_app_role(restriction: Restriction) -> None:
    """Register SQL statements that take back part of the app role's rights. `restriction(connection, role)` gets the
    role's quoted name and returns the statements; they run after the grants, at every `migrate`."""
    if restriction not in _restrictions:
        _restrictions.append(restriction)


def app_role_statements(connection: BaseDatabaseWrapper, role: str) -> list[str]:
    """What the app's role is granted, then what the apps take back."""
    if not ROLE_NAME.fullmatch(role):
        raise ValueError(f"DATABASE_APP_ROLE must be a plain role name ({ROLE_NAME.pattern}), not {role!r}")
    quoted = connection.ops.quote_name(role)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = connection.ops.quote_name(cursor.fetchone()[0])
    statements = [
        # Before PostgreSQL 15 every role could create objects in `public` (a database upgraded since keeps that):
        # a function of the app role's there could be found by the owner's code (partners migration 0012).
        f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC, {quoted}",
        f"GRANT USAGE ON SCHEMA {schema} TO {quoted}",
        f"REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {schema} FROM {quoted}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {quoted}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {quoted}",
        # Which migrations ran is the owner's to record: a row removed would stop every new pod at its
        # `migrate --check`, a row added would have the next `migrate` skip that migration.
        f"REVOKE INSERT, UPDATE, DELETE ON {schema}.django_migrations FROM {quoted}",
    ]
    for restriction in _restrictions:
        statements.extend(restriction(connection, quoted))
    return statements


def grant_app_role(*, connection: BaseDatabaseWrapper, role: str) -> None:
    """Give the app's role exactly its rights on every table there is now (run by `migrate`, as the owner), in one
    transaction: another session of the role never sees the broad grants before what the apps take back."""
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        for statement in app_role_statements(connection, role):
            cursor.execute(statement)
        # A REVOKE by a role that does not own the schema only warns (PostgreSQL 14's `public` is the bootstrap
        # superuser's, as on many managed databases): then say so, rather than leave the role able to create there.
        cursor.execute(
            "SELECT has_schema_privilege(%s, current_schema(), 'CREATE') OR has_schema_privilege('public',"
            " current_schema(), 'CREATE'), current_schema()",
            [role],
        )
        may_create, schema = cursor.fetchone()
    if may_create:
        raise ImproperlyConfigured(
            f"The app's role {role} (or PUBLIC) may still create objects in the schema {schema}, and this role could "
            f"not take that away: as the schema's owner, run REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC, {role}; "
            'then migrate again (docs/data-protection.md, "Database roles").'
        )


def grant_app_role_after_migrate(*, using: str, **kwargs: Any) -> None:
    """post_migrate: with DATABASE_APP_ROLE set, put the role's rights back to exactly `app_role_statements`."""
    connection = connections[using]
    if connection.vendor == "postgresql" and settings.DATABASE_APP_ROLE:
        grant_app_role(connection=connection, role=settings.DATABASE_APP_ROLE)


def owner_rights(connection: BaseDatabaseWrapper) -> tuple[str, str]:
    """The connected role, and what it may do beyond the app's role (PostgreSQL): "superuser"; "owner" when it owns
    (or is a member of a role that owns) the current schema or a table in it, which lets it alter a table, drop a
    trigger, rewrite the audit trail; or "" for neither."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, current_setting('is_superuser') = 'on',"
            " pg_has_role(current_user, namespace.nspowner, 'MEMBER') OR EXISTS ("
            "   SELECT 1 FROM pg_catalog.pg_class WHERE relnamespace = namespace.oid"
            "   AND pg_has_role(current_user, relowner, 'MEMBER'))"
            " FROM pg_catalog.pg_namespace namespace WHERE namespace.nspname = current_schema()"
        )
        role, superuser, owner = cursor.fetchone()
    return role, "superuser" if superuser else "owner" if owner else ""
