"""The audit trail against the database itself (partners migration 0008, kelabooking/database.py): the app's own role
may only read and append, whatever it sets in its session; the trigger lets through only the three changes the trail
ever takes, whoever asks; the retention job and the key rotation still work, each as the role it runs as."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from bookings.models import Booking, Customer
from kelabooking import clock, database
from kelabooking.retention import retention_run
from partners.models import AuditEvent
from tests.factories import BookingFactory, CustomerFactory, SlotFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

APP_ROLE = "kelabooking_test_app"
TABLE = "partners_auditevent"
YEAR = dt.timedelta(days=365)


def sql(statement: str, params: list | None = None) -> list[tuple]:
    """Run one statement in a savepoint (so a refusal leaves the test's transaction usable)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def event_at(moment: dt.datetime, **fields) -> AuditEvent:
    with time_machine.travel(moment, tick=False):
        return AuditEvent.objects.create(**{"action": AuditEvent.Action.CUSTOMER_OPENED, **fields})


def create_app_role() -> None:
    """The role, for this test's transaction only (a role made in it vanishes with it)."""
    if not sql("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE]):
        sql(f"CREATE ROLE {APP_ROLE} NOLOGIN")


@contextmanager
def as_owner() -> Iterator[None]:
    """Inside an `app_role` test, as the owner for a moment: only the owner dates the events it records."""
    sql("RESET ROLE")
    yield
    sql(f"SET LOCAL ROLE {APP_ROLE}")


@pytest.fixture
def app_role() -> Iterator[None]:
    """This transaction as the app's role, with exactly what every `migrate` grants it."""
    create_app_role()
    database.grant_app_role(connection=connection, role=APP_ROLE)
    sql(f"SET LOCAL ROLE {APP_ROLE}")
    yield
    sql("RESET ROLE")


def test_audit_trail__app_role_setting_the_old_maintenance_mark__cannot_rewrite_or_delete(app_role) -> None:
    recorded = event_at(clock.now(), actor_name="Helena")
    for mark, statement in (
        ("rotation", f"UPDATE {TABLE} SET action = 'logout', actor_name = 'x' WHERE id = %s"),  # noqa: S608
        ("retention", f"DELETE FROM {TABLE} WHERE id = %s"),  # noqa: S608
        ("rotation", f"UPDATE {TABLE} SET customer_digest = 'x' WHERE id = %s"),  # noqa: S608
    ):
        with transaction.atomic():
            sql("SELECT set_config('kelabooking.audit_maintenance', %s, true)", [mark])
            with pytest.raises(DatabaseError, match="permission denied"):
                sql(statement, [recorded.pk])
    with pytest.raises(DatabaseError, match="permission denied"):
        sql(f"TRUNCATE {TABLE}")
    recorded = AuditEvent.objects.get(pk=recorded.pk)
    assert (recorded.action, recorded.actor_name) == (AuditEvent.Action.CUSTOMER_OPENED, "Helena")
    # What the app does need still works: reading and appending.
    event_at(clock.now(), action=AuditEvent.Action.LOGOUT)
    assert AuditEvent.objects.count() == 2


def test_audit_trail__app_role__appends_events_but_chooses_no_id_and_records_no_migration(app_role) -> None:
    """An id chosen ahead of the sequence would make the next real event fail on the primary key; a row removed from
    or added to django_migrations would stop the next pods' `migrate --check`, or have a migration skipped."""
    taken = event_at(clock.now()).pk + 1
    with pytest.raises(DatabaseError, match="permission denied"):
        sql(f"INSERT INTO {TABLE} (id, created_at, action) VALUES (%s, now(), 'logout')", [taken])  # noqa: S608
    assert event_at(clock.now()).pk == taken  # the next event gets it
    for statement in (
        "DELETE FROM django_migrations WHERE app = 'partners'",
        "INSERT INTO django_migrations (app, name, applied) VALUES ('partners', '9999_later', now())",
        "UPDATE partners_removedauditevents SET events = 0",
        "DELETE FROM partners_removedauditevents",
    ):
        with pytest.raises(DatabaseError, match="permission denied"):
            sql(statement)


def test_audit_trail__app_role__may_detach_a_customer_but_not_repoint_it(app_role) -> None:
    first, second = CustomerFactory(), CustomerFactory()
    recorded = event_at(clock.now(), customer=first)
    with pytest.raises(DatabaseError, match="append-only"):
        sql(f"UPDATE {TABLE} SET customer_id = %s WHERE id = %s", [second.pk, recorded.pk])  # noqa: S608
    with pytest.raises(DatabaseError, match="permission denied"):
        sql(f"UPDATE {TABLE} SET customer_id = NULL, actor_name = 'x' WHERE id = %s", [recorded.pk])  # noqa: S608
    sql(f"UPDATE {TABLE} SET customer_id = NULL WHERE id = %s", [recorded.pk])  # noqa: S608
    recorded = AuditEvent.objects.get(pk=recorded.pk)
    assert (recorded.customer_id, recorded.customer_digest) == (None, first.identity_code_digest)


def test_audit_trail__expiry_function__removes_nothing_younger_than_the_audit_period(app_role) -> None:
    now = clock.now()
    with as_owner():
        old = event_at(now - 6 * YEAR)
        young = event_at(now - YEAR)
    # The app asks for everything up to tomorrow: the database removes only what its period allows.
    assert AuditEvent.objects.expire(before=now + dt.timedelta(days=1)) == 1
    assert list(AuditEvent.objects.values_list("pk", flat=True)) == [young.pk]
    assert not AuditEvent.objects.filter(pk=old.pk).exists()


def test_audit_trail__expiry_function__runs_no_trigger_of_a_temporary_table_the_app_role_made(app_role) -> None:
    """The function runs as the owner. Had it looked for `partners_auditevent` in the session's temporary schema first
    (a search path without `pg_temp`), the app's role could shadow the table with a temporary one whose trigger then
    ran as the owner and could rewrite the real trail or grant the role anything (partners migration 0011)."""
    recorded = event_at(clock.now(), actor_name="Helena")
    sql(f"CREATE TEMPORARY TABLE {TABLE} (created_at timestamptz)")
    sql(
        "CREATE FUNCTION pg_temp.as_the_owner() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'ran as %', current_user; END $$"
    )
    sql(f"CREATE TRIGGER as_the_owner BEFORE DELETE ON pg_temp.{TABLE} EXECUTE FUNCTION pg_temp.as_the_owner()")

    assert sql("SELECT partners_auditevent_expire(now())") == [(0,)]  # the real trail, where nothing has expired

    sql(f"DROP TABLE pg_temp.{TABLE}")  # which this session's own unqualified names find first
    assert AuditEvent.objects.get(pk=recorded.pk).actor_name == "Helena"
    assert sql("SELECT proconfig FROM pg_proc WHERE proname = 'partners_auditevent_expire'")[0][0] == [
        "search_path=pg_catalog, pg_temp"
    ]


def test_audit_trail__app_role__cannot_date_an_event(app_role) -> None:
    """An event the app's role inserts carries the database's time, whatever the INSERT says: none dated into the past
    (among old events, or already past the retention period) or far ahead (never expiring). Partners 0012."""
    past = event_at(clock.now() - 6 * YEAR)
    ahead = event_at(clock.now() + 20 * YEAR)
    [(database_now,)] = sql("SELECT now()")

    for event in (past, ahead):
        stored = AuditEvent.objects.get(pk=event.pk).created_at
        assert abs(stored - database_now) < dt.timedelta(minutes=1)
    with as_owner():  # the owner's (key rotation, tests) keep the time they give
        kept = event_at(clock.now() - 6 * YEAR)
    assert AuditEvent.objects.get(pk=kept.pk).created_at == kept.created_at


def test_audit_trail__trigger__calls_no_function_of_the_apps_schema() -> None:
    """A function of the exact argument type wins over pg_catalog's polymorphic one wherever it is on the search
    path: had the trigger's path named the app's schema, a `to_jsonb(partners_auditevent)` made there (by any role
    that may create in it, as every role could in `public` before PostgreSQL 15) would run as whoever updates the
    trail, the owner's key rotation included. Partners 0012: the functions search `pg_catalog` only."""
    recorded = event_at(clock.now(), actor_name="Helena")
    [(schema,)] = sql("SELECT current_schema()")
    sql(
        f"CREATE FUNCTION {schema}.to_jsonb({TABLE}) RETURNS jsonb LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the schema''s to_jsonb ran as %', current_user; END $$"
    )

    assert AuditEvent.objects.filter(pk=recorded.pk).rewrite(customer_digest="d" * 64) == 1

    with pytest.raises(DatabaseError, match="append-only"):
        sql(f"UPDATE {TABLE} SET actor_name = 'x' WHERE id = %s", [recorded.pk])  # noqa: S608
    functions = ("partners_auditevent_expire", "partners_auditevent_append_only", "partners_auditevent_stamp")
    configs = sql("SELECT proname, proconfig FROM pg_proc WHERE proname = ANY(%s) ORDER BY proname", [list(functions)])
    assert configs == [(name, ["search_path=pg_catalog, pg_temp"]) for name in sorted(functions)]


def test_audit_trail__owner__only_the_three_maintenance_changes_pass_the_trigger() -> None:
    """Not even the owner's role (no session mark to set any more) changes what an event says."""
    now = clock.now()
    recorded = event_at(now - YEAR, actor_name="Helena")
    for statement in (
        f"UPDATE {TABLE} SET action = 'logout' WHERE id = %s",  # noqa: S608
        f"UPDATE {TABLE} SET customer_digest = 'x', actor_name = 'x' WHERE id = %s",  # noqa: S608
        f"DELETE FROM {TABLE} WHERE id = %s",  # noqa: S608  (younger than the period)
    ):
        with transaction.atomic():
            sql("SELECT set_config('kelabooking.audit_maintenance', 'retention', true)")
            with pytest.raises(DatabaseError, match="append-only"):
                sql(statement, [recorded.pk])
    # Key rotation's change, and only that, passes; and leaves nothing open behind it in the same transaction.
    assert AuditEvent.objects.filter(pk=recorded.pk).rewrite(customer_digest="d" * 64) == 1
    with pytest.raises(DatabaseError, match="append-only"):
        sql(f"UPDATE {TABLE} SET actor_name = 'x' WHERE id = %s", [recorded.pk])  # noqa: S608
    old = event_at(now - 6 * YEAR)
    sql(f"DELETE FROM {TABLE} WHERE id = %s", [old.pk])  # noqa: S608
    assert list(AuditEvent.objects.values_list("actor_name", "customer_digest")) == [("Helena", "d" * 64)]


def test_retention__as_the_app_role__removes_expired_events_and_detaches_removed_customers(app_role) -> None:
    now = clock.now()
    with time_machine.travel(now - 6 * YEAR, tick=False):
        customer = CustomerFactory(source=Customer.Source.ENTERED_BY_PARTNER)
        slot = SlotFactory(starts_at=clock.now() + dt.timedelta(days=3))
        BookingFactory.confirmed(slot=slot, customer=customer)
    with as_owner():
        old = event_at(now - 6 * YEAR, customer=customer)
        kept = event_at(now - 3 * YEAR, customer=customer)
    run = retention_run()
    assert (run.customers_removed, run.audit_events_removed, run.error) == (1, 1, "")
    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    kept = AuditEvent.objects.get(pk=kept.pk)
    assert (kept.customer_id, kept.customer_digest) == (None, customer.identity_code_digest)
    assert Booking.objects.get().customer_id is None


def test_key_rotation__as_the_app_role__refused_with_the_role_to_use(app_role) -> None:
    event_at(clock.now(), actor_name="Helena")
    with pytest.raises(CommandError, match="database owner"):
        call_command("rotate_identity_keys")


def test_migrate__grants_the_app_role_exactly_its_rights(settings) -> None:
    create_app_role()
    settings.DATABASE_APP_ROLE = APP_ROLE
    database.grant_app_role_after_migrate(using="default")

    def may(table: str, privilege: str) -> bool:
        return sql("SELECT has_table_privilege(%s, %s, %s)", [APP_ROLE, table, privilege])[0][0]

    def may_column(table: str, column: str, privilege: str) -> bool:
        return sql("SELECT has_column_privilege(%s, %s, %s, %s)", [APP_ROLE, table, column, privilege])[0][0]

    assert may(TABLE, "SELECT")
    assert not any(may(TABLE, privilege) for privilege in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"))
    assert all(may_column(TABLE, column, "INSERT") for column in ("created_at", "action", "customer_digest"))
    assert not may_column(TABLE, "id", "INSERT")  # the sequence chooses
    assert [may_column(TABLE, column, "UPDATE") for column in ("customer_id", "action")] == [True, False]
    removed = "partners_removedauditevents"
    assert all(may_column(removed, column, "INSERT") for column in ("run_id", "customer_digest", "events"))
    assert not may_column(removed, "id", "INSERT")  # one taken ahead of the sequence would stop every later run
    assert not any(may(removed, privilege) for privilege in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"))
    assert may("django_migrations", "SELECT")  # `migrate --check` reads it
    assert not any(may("django_migrations", privilege) for privilege in ("INSERT", "UPDATE", "DELETE"))
    assert may("bookings_booking", "UPDATE")
    assert may("bookings_booking", "DELETE")
    assert not may("bookings_booking", "TRUNCATE")
    expire = "partners_auditevent_expire(timestamptz)"
    assert sql("SELECT has_function_privilege(%s, %s, 'EXECUTE')", [APP_ROLE, expire])[0][0]
    assert not sql("SELECT has_function_privilege('public', %s, 'EXECUTE')", [expire])[0][0]


def test_migrate__the_app_role_may_create_nothing_in_the_schema() -> None:
    """Before PostgreSQL 15 every role could create objects in `public`, and a database upgraded since keeps that:
    `migrate` takes it from the app's role (and from PUBLIC, through which it had it)."""
    create_app_role()
    [(schema,)] = sql("SELECT current_schema()")
    sql(f"GRANT CREATE ON SCHEMA {schema} TO PUBLIC")  # as such a database has it

    database.grant_app_role(connection=connection, role=APP_ROLE)

    assert sql("SELECT has_schema_privilege(%s, %s, 'CREATE')", [APP_ROLE, schema]) == [(False,)]
    assert sql("SELECT has_schema_privilege(%s, %s, 'USAGE')", [APP_ROLE, schema]) == [(True,)]


def test_migrate__the_app_role_still_able_to_create_in_the_schema__refused_naming_what_to_run() -> None:
    """A REVOKE by a role that does not own the schema only warns, and CREATE can come through another role: then
    `migrate` stops and says what the schema's owner has to run, rather than leave it so silently."""
    create_app_role()
    [(schema,)] = sql("SELECT current_schema()")
    sql("CREATE ROLE kelabooking_test_creators NOLOGIN")
    sql(f"GRANT CREATE ON SCHEMA {schema} TO kelabooking_test_creators")
    sql(f"GRANT kelabooking_test_creators TO {APP_ROLE}")

    with pytest.raises(ImproperlyConfigured, match=f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC, {APP_ROLE}"):
        database.grant_app_role(connection=connection, role=APP_ROLE)


@pytest.mark.django_db(transaction=True)
def test_migrate__grants_in_one_transaction() -> None:
    """`migrate` runs in autocommit: the broad grants, committed one by one before what the apps take back, left the
    role's other sessions a moment to rewrite the trail's customer index or the removed-event counts at every
    `migrate`. Now every statement runs inside one transaction."""
    executed: list[tuple[str, bool]] = []

    def record(execute, statement, params, many, context):
        executed.append((statement.split()[0], connection.in_atomic_block))
        return execute(statement, params, many, context)

    create_app_role()
    try:
        with connection.execute_wrapper(record):
            database.grant_app_role(connection=connection, role=APP_ROLE)
    finally:
        sql(f"DROP OWNED BY {APP_ROLE}")
        sql(f"DROP ROLE {APP_ROLE}")

    grants = [in_transaction for verb, in_transaction in executed if verb in ("GRANT", "REVOKE")]
    assert len(grants) >= 8
    assert all(grants)


@pytest.mark.parametrize("role", ['app"; DROP TABLE partners_auditevent; --', "App", ""])
def test_migrate__a_role_name_that_is_not_plain__refused_before_any_statement(role: str) -> None:
    with pytest.raises(ValueError, match="plain role name"):
        database.app_role_statements(connection, role)
    assert AuditEvent.objects.count() == 0  # the table is still there
