"""Statements of the hottest paths written in SQL once, instead of built by the ORM on every request.

For the short statements of a booking confirm (the outbox rows, the audit event, the locking read and the
compare-and-swap of `bookings.services.statements`, the session's save) building the SQL with the ORM costs more CPU
than running it (docs/benchmarks.md §3). What is written here still comes from the models: the columns are the
models' own and the values go through each field's own conversion to and from the database, so a new field needs no
change here and the same SQL runs on PostgreSQL and SQLite. Everything else uses the ORM.

Two limits, on purpose: it runs on the default database connection (the only one here), and it reads
`Field.cached_col`, the column expression Django's compiler hands to converters, which is not a public API: recheck
`instance` when upgrading Django (tests/kelabooking/test_sql.py compares it with the ORM's reading).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def column(model: type[Model], name: str) -> str:
    return quote(model._meta.get_field(name).column)


def prepare(model: type[Model], name: str, value: Any) -> Any:
    """A value as the database takes it for this field (on SQLite a UUID is 32 hex digits, a datetime a string)."""
    return model._meta.get_field(name).get_db_prep_value(value, connection, prepared=False)


def columns(model: type[Model], alias: str) -> str:
    """The model's columns, in the order `instance` takes them."""
    return ", ".join(f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields)


@functools.cache
def _converters(model: type[Model], vendor: str) -> tuple[tuple[int, Field, tuple[Callable, ...]], ...]:
    """The fields whose database values Django converts, as its compiler does (on SQLite: aware datetimes, UUIDs;
    on PostgreSQL none of the confirm's fields needs one)."""
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        functions = connection.ops.get_db_converters(field.cached_col) + field.get_db_converters(connection)
        if functions:
            found.append((index, field, tuple(functions)))
    return tuple(found)


def instance(model: type[M], values: Sequence[Any]) -> M:
    """A model instance from its columns (as `columns` lists them), with Django's conversions of database values."""
    values = list(values)
    for index, field, functions in _converters(model, connection.vendor):
        for function in functions:
            values[index] = function(values[index], field.cached_col, connection)
    return model.from_db(connection.alias, [field.attname for field in model._meta.concrete_fields], values)


def _inserted_fields(model: type[Model]) -> list[Field]:
    """What an INSERT writes: not the primary key (the database numbers it), not a column the database computes."""
    return [field for field in model._meta.concrete_fields if not field.primary_key and not field.generated]


@functools.cache
def _insert_sql(model: type[Model], vendor: str, rows: int, conflict_key: str) -> str:
    fields = _inserted_fields(model)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    conflict = ""
    if conflict_key:
        key = column(model, conflict_key)
        # Touches only the key, so the existing row is returned and nothing in it changes.
        conflict = f"ON CONFLICT ({key}) DO UPDATE SET {key} = EXCLUDED.{key}"
    table, names = quote(model._meta.db_table), ", ".join(quote(field.column) for field in fields)
    values, key = ", ".join([row] * rows), quote(model._meta.pk.column)
    return f"INSERT INTO {table} ({names}) VALUES {values} {conflict} RETURNING {key}"  # noqa: S608 - the model's own


def insert(objs: Sequence[M], *, conflict_key: str = "") -> list[M]:
    """INSERT new instances of one model in one statement and give each its primary key, as `bulk_create` does.

    With `conflict_key` (a unique field), an instance whose key is already stored gets that row's primary key and
    nothing is written for it. Instances are saved as they are: no `save()`, no signals.
    """
    if not objs:
        return []
    model = type(objs[0])
    fields = _inserted_fields(model)
    params = [field.get_db_prep_save(field.pre_save(obj, add=True), connection) for obj in objs for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(model, connection.vendor, len(objs), conflict_key), params)
        keys = cursor.fetchall()
    for obj, (key,) in zip(objs, keys, strict=True):
        obj.pk = key
        obj._state.adding, obj._state.db = False, connection.alias
    return list(objs)
