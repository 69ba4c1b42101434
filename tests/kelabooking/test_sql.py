"""`kelabooking.sql`: the confirm's INSERTs written once, and model instances read back from plain rows."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection

from bookings.models import Booking
from kelabooking import clock, sql
from kelabooking.models import Message
from tests.factories import BookingFactory

pytestmark = pytest.mark.django_db


def message(key: str, **fields) -> Message:
    return Message(
        key=key,
        kind=Message.Kind.CONFIRMATION,
        channel=Message.Channel.SMS,
        recipient="+358401234567",
        language="sv",
        context={"booking": 7, "note": "åäö"},
        next_attempt_at=clock.now(),
        **fields,
    )


def test_insert__rows_read_back_by_the_orm_as_written(django_assert_num_queries) -> None:
    written = [message("test:1"), message("test:2", body="Hej", attempts=2)]

    with django_assert_num_queries(1):
        inserted = sql.insert(written)

    assert inserted == written
    assert [row.pk for row in written] == list(Message.objects.order_by("pk").values_list("pk", flat=True))
    assert all(not row._state.adding for row in written)
    for row in written:
        stored = Message.objects.get(pk=row.pk)
        assert stored.created_at is not None  # auto_now_add, as a save sets it
        assert stored.created_at == row.created_at
        for field in ("key", "kind", "recipient", "language", "context", "body", "attempts", "next_attempt_at"):
            assert getattr(stored, field) == getattr(row, field), field


def test_insert__key_already_stored__returns_that_row_and_changes_nothing() -> None:
    [first] = sql.insert([message("test:1", body="first")])

    [again, other] = sql.insert([message("test:1", body="second"), message("test:2")], conflict_key="key")

    assert again.pk == first.pk
    assert other.pk not in (first.pk, None)
    assert Message.objects.get(pk=first.pk).body == "first"
    assert Message.objects.count() == 2


def test_instance__from_a_plain_row__equals_the_orm_instance() -> None:
    booking = BookingFactory.confirmed(idempotency_key=uuid.uuid4(), hold_expires_at=None)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql.columns(Booking, 'b')} FROM bookings_booking b WHERE b.id = %s", [booking.pk])  # noqa: S608
        [row] = cursor.fetchall()

    read = sql.instance(Booking, row)

    stored = Booking.objects.get(pk=booking.pk)
    for field in Booking._meta.concrete_fields:
        assert getattr(read, field.attname) == getattr(stored, field.attname), field.name
    assert isinstance(read.idempotency_key, uuid.UUID)  # on SQLite stored as 32 hex digits, converted back
    assert read.confirmed_at.utcoffset() == dt.timedelta(0)  # aware, in UTC
    assert not read._state.adding
