"""Bookings made at the same moment from separate database connections: capacity and the customer rules hold.

Each attempt is a real thread with its own connection, released together by a barrier. Where one interleaving
matters, the test holds a row lock from its own connection until the attempts are seen waiting in PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, transaction

from bookings.models import Booking, Customer, Slot
from bookings.services import BookingError, ExistingBookingError, SlotFullError, booking_cancel, booking_hold
from bookings.services.booking import ContactDetails, booking_confirm
from kelabooking import clock
from kelabooking.models import Message
from partners.models import User
from registry.models import Organisation
from tests.factories import (
    BookingFactory,
    CustomerFactory,
    OrganisationFactory,
    PartnerFactory,
    SlotFactory,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PHONE = "+358401234567"


class Attempt(threading.Thread):
    """One request: its own thread and database connection. `outcome` is what the call returned or raised."""

    def __init__(self, call: Callable[[], object], barrier: threading.Barrier | None = None) -> None:
        super().__init__(daemon=True)
        self.call, self.barrier = call, barrier
        self.outcome: object = None

    def run(self) -> None:
        try:
            connection.ensure_connection()  # connect first, so that the barrier releases the queries together
            if self.barrier is not None:
                self.barrier.wait(timeout=30)
            self.outcome = self.call()
        except Exception as error:  # the outcome under test: the caller asserts on its type
            self.outcome = error
        finally:
            connection.close()  # this thread's own connection

    def finish(self) -> object:
        self.join(timeout=60)
        assert not self.is_alive(), "an attempt is still waiting: a lock was never released"
        return self.outcome


def run_together(calls: list[Callable[[], object]]) -> list[object]:
    """Start every call in its own thread, release them at once, and return their outcomes in order."""
    barrier = threading.Barrier(len(calls))
    attempts = [Attempt(call, barrier) for call in calls]
    for attempt in attempts:
        attempt.start()
    return [attempt.finish() for attempt in attempts]


def wait_until_waiting_for_locks(count: int) -> None:
    """Until `count` other connections wait for a lock (seen from the test's own connection)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            # pg_stat_activity is read once per transaction unless the snapshot is cleared.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] >= count:
                return
        time.sleep(0.02)
    raise AssertionError(f"{count} attempts never waited for a lock")


@contextmanager
def row_locked(model: type[Customer] | type[Slot], pk: int) -> Iterator[None]:
    """Hold one row lock from the test's connection until the block ends.

    FOR NO KEY UPDATE: it blocks the services' FOR UPDATE, but not inserts of bookings that refer to the row.
    """
    with transaction.atomic():
        model.objects.select_for_update(no_key=True).get(pk=pk)
        yield


def hold_then_confirm(slot: Slot, *, customer: Customer, partner: User, organisation: Organisation, now):
    def call() -> Booking:
        held = booking_hold(slot_id=slot.pk, customer=customer, partner=partner, organisation=organisation, now=now)
        return confirm(held, now=now)

    return call


def hold_only(slot: Slot, *, customer: Customer, partner: User, organisation: Organisation, now):
    def call() -> Booking:
        return booking_hold(slot_id=slot.pk, customer=customer, partner=partner, organisation=organisation, now=now)

    return call


def confirm(held: Booking, *, now, key: uuid.UUID | None = None, email: str = "") -> Booking:
    return booking_confirm(
        booking_id=held.pk,
        partner=held.booked_by,
        contact=ContactDetails(phone=PHONE, email=email),
        idempotency_key=key or uuid.uuid4(),
        now=now,
    )


def unexpected(outcomes: list[object], *expected: type) -> list[object]:
    return [outcome for outcome in outcomes if not isinstance(outcome, expected)]


def test_slot__fifty_partners_book_it_at_once__exactly_capacity_succeed() -> None:
    slot = SlotFactory(capacity=3)
    organisation = OrganisationFactory()
    now = clock.now()
    calls = [
        hold_then_confirm(
            slot, customer=CustomerFactory(), partner=PartnerFactory(), organisation=organisation, now=now
        )
        for _ in range(50)
    ]

    outcomes = run_together(calls)

    assert unexpected(outcomes, Booking, SlotFullError) == []
    assert sum(isinstance(outcome, Booking) for outcome in outcomes) == 3
    assert sum(isinstance(outcome, SlotFullError) for outcome in outcomes) == 47
    assert Booking.objects.filter(slot=slot, status=Booking.Status.CONFIRMED).count() == 3
    assert not Booking.objects.filter(slot=slot, status=Booking.Status.HELD).exists()
    assert Booking.objects.filter(slot=slot).taking_capacity(now=now).count() == 3


@pytest.mark.parametrize("run", range(5))
def test_slot__expired_holds_confirmed_while_others_hold_and_book__never_exceeds_capacity(run) -> None:
    slot = SlotFactory(capacity=3)
    organisation = OrganisationFactory()
    now = clock.now()
    expired = [BookingFactory.held(slot=slot, expires_at=now - dt.timedelta(minutes=1)) for _ in range(8)]
    BookingFactory.held(slot=slot)  # a live hold: two places are free
    calls = [lambda held=held: confirm(held, now=now) for held in expired]
    for make in [hold_only] * 4 + [hold_then_confirm] * 4:
        calls.append(
            make(slot, customer=CustomerFactory(), partner=PartnerFactory(), organisation=organisation, now=now)
        )

    outcomes = run_together(calls)

    assert unexpected(outcomes, Booking, SlotFullError) == []
    assert sum(isinstance(outcome, Booking) for outcome in outcomes) == 2
    assert Booking.objects.filter(slot=slot).taking_capacity(now=now).count() == slot.capacity
    # Every expired hold was either confirmed or released.
    assert not Booking.objects.filter(slot=slot, status=Booking.Status.HELD, hold_expires_at__lte=now).exists()


@pytest.mark.parametrize("run", range(3))
def test_slot__cancel_races_new_bookings__at_most_one_takes_the_freed_place(run) -> None:
    slot = SlotFactory(capacity=3)
    booked = BookingFactory.confirmed_batch(3, slot=slot)
    organisation = OrganisationFactory()
    now = clock.now()
    calls: list[Callable[[], object]] = [
        lambda: booking_cancel(booking_id=booked[0].pk, actor=booked[0].booked_by, reason="Race", now=now)
    ]
    calls += [
        hold_then_confirm(
            slot, customer=CustomerFactory(), partner=PartnerFactory(), organisation=organisation, now=now
        )
        for _ in range(8)
    ]

    cancelled, *outcomes = run_together(calls)

    assert isinstance(cancelled, Booking)
    assert unexpected(outcomes, Booking, SlotFullError) == []
    successes = sum(isinstance(outcome, Booking) for outcome in outcomes)
    assert successes <= 1
    confirmed = Booking.objects.filter(slot=slot, status=Booking.Status.CONFIRMED).count()
    assert confirmed == 2 + successes
    assert Booking.objects.filter(slot=slot).taking_capacity(now=now).count() <= slot.capacity


@pytest.mark.parametrize("clash", ["same-line", "overlapping-lines"])
def test_customer__booked_by_several_partners_at_once__exactly_one_succeeds(clash) -> None:
    customer = CustomerFactory()
    now = clock.now()
    first = SlotFactory()
    if clash == "same-line":  # eight times of one line, hours apart
        others = [
            SlotFactory(service_line=first.service_line, starts_at=first.starts_at + dt.timedelta(hours=hours))
            for hours in range(1, 8)
        ]
    else:  # eight lines at the same time
        others = [SlotFactory(starts_at=first.starts_at) for _ in range(7)]
    holds = [
        booking_hold(
            slot_id=slot.pk, customer=customer, partner=PartnerFactory(), organisation=OrganisationFactory(), now=now
        )
        for slot in [first, *others]
    ]

    outcomes = run_together([lambda held=held: confirm(held, now=now) for held in holds])

    assert unexpected(outcomes, Booking, ExistingBookingError) == []
    winners = [outcome for outcome in outcomes if isinstance(outcome, Booking)]
    assert len(winners) == 1
    assert {outcome.existing.pk for outcome in outcomes if isinstance(outcome, ExistingBookingError)} == {winners[0].pk}
    assert list(Booking.objects.filter(customer=customer, status=Booking.Status.CONFIRMED)) == winners


def test_booking__confirm_submitted_twice_at_once__same_booking_and_one_message() -> None:
    now = clock.now()
    held = BookingFactory.held()
    key = uuid.uuid4()

    with row_locked(Customer, held.customer_id):
        attempts = [Attempt(lambda: confirm(held, now=now, key=key, email="aino@example.org")) for _ in range(2)]
        for attempt in attempts:
            attempt.start()
        wait_until_waiting_for_locks(2)  # both past the idempotency check, both waiting for the customer
    outcomes = [attempt.finish() for attempt in attempts]

    assert unexpected(outcomes, Booking) == []
    assert {outcome.pk for outcome in outcomes} == {held.pk}
    assert Booking.objects.get(pk=held.pk).status == Booking.Status.CONFIRMED
    assert Message.objects.count() == 2  # one SMS and one e-mail, not two of each


def test_booking__confirm_while_the_partner_picks_another_time__refused_cleanly() -> None:
    now = clock.now()
    held = BookingFactory.held()
    partner = held.booked_by
    another_time = SlotFactory()

    with row_locked(Customer, held.customer_id):
        confirming = Attempt(lambda: confirm(held, now=now))
        confirming.start()
        wait_until_waiting_for_locks(1)  # read the hold, waiting for the customer
        picking = Attempt(
            hold_only(another_time, customer=held.customer, partner=partner, organisation=held.organisation, now=now)
        )
        picking.start()
        repicked = picking.finish()  # released the first hold and committed
    refused = confirming.finish()

    assert isinstance(repicked, Booking)
    assert type(refused) is BookingError
    assert list(Booking.objects.filter(booked_by=partner)) == [repicked]


def test_booking__confirm_while_the_partner_picks_the_same_time_again__no_deadlock() -> None:
    now = clock.now()
    held = BookingFactory.held()
    partner = held.booked_by

    with row_locked(Slot, held.slot_id):
        confirming = Attempt(lambda: confirm(held, now=now))
        confirming.start()
        wait_until_waiting_for_locks(1)  # holds the customer, first in the queue for the slot
        picking = Attempt(
            hold_only(held.slot, customer=held.customer, partner=partner, organisation=held.organisation, now=now)
        )
        picking.start()
        wait_until_waiting_for_locks(2)
    confirmed, repicked = confirming.finish(), picking.finish()

    assert isinstance(confirmed, Booking)
    assert isinstance(repicked, Booking)
    assert Booking.objects.get(pk=held.pk).status == Booking.Status.CONFIRMED
    assert Booking.objects.filter(slot=held.slot).taking_capacity(now=now).count() == 2


def test_booking__another_partner_holds_for_the_customer_while_confirming__no_deadlock() -> None:
    now = clock.now()
    held = BookingFactory.held()
    other_partner, other_organisation = PartnerFactory(), OrganisationFactory()

    with row_locked(Slot, held.slot_id):
        picking = Attempt(
            hold_only(
                held.slot, customer=held.customer, partner=other_partner, organisation=other_organisation, now=now
            )
        )
        picking.start()
        wait_until_waiting_for_locks(1)  # first in the queue for the slot
        confirming = Attempt(lambda: confirm(held, now=now))
        confirming.start()
        wait_until_waiting_for_locks(2)  # holds the customer, waiting for the slot
    other_hold, confirmed = picking.finish(), confirming.finish()

    assert isinstance(other_hold, Booking)
    assert isinstance(confirmed, Booking)
    assert Booking.objects.filter(slot=held.slot).taking_capacity(now=now).count() == 2
