"""Bookings made at the same moment from separate database connections: capacity and the customer rules hold.

Each attempt is a real thread with its own connection, released together by a barrier. Where one interleaving
matters, the test holds a row lock from its own connection until the attempts are seen waiting in PostgreSQL. The
services lock in one order (the partner's user row, the slot, the customer, the booking) and read the clock after
their locks; the interleavings below are chosen along that order.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import time_machine
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Model

from bookings.models import Booking, Customer, Slot
from bookings.services import (
    BookingError,
    ContactDetails,
    ExistingBookingError,
    HoldChangedError,
    MatterBookedError,
    SlotFullError,
    booking_cancel,
    booking_confirm,
    booking_hold,
    booking_move,
)
from kelabooking import clock
from kelabooking.models import Message
from partners.context import ActingContext, ActingRefusedError
from partners.models import AuditEvent, User
from registry.models import Organisation
from tests.factories import (
    BookingFactory,
    CustomerFactory,
    OrganisationFactory,
    SlotFactory,
    acting_for,
    acting_for_hold,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PHONE = "+358401234567"
HOLD = dt.timedelta(minutes=settings.BOOKING_HOLD_MINUTES)
WAIT_SECONDS = 15


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


def started(call: Callable[[], object]) -> Attempt:
    attempt = Attempt(call)
    attempt.start()
    return attempt


def run_together(calls: list[Callable[[], object]]) -> list[object]:
    """Start every call in its own thread, release them at once, and return their outcomes in order."""
    barrier = threading.Barrier(len(calls))
    attempts = [Attempt(call, barrier) for call in calls]
    for attempt in attempts:
        attempt.start()
    return [attempt.finish() for attempt in attempts]


def waiting_for_locks() -> int:
    """How many other connections to the test database wait for a lock (seen from the test's own connection)."""
    with connection.cursor() as cursor:
        # pg_stat_activity is read once per transaction unless the snapshot is cleared.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    # time.monotonic is real time even while time_machine holds the clock still.
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"never happened within {WAIT_SECONDS} s: {what}")


def wait_until_waiting_for_locks(count: int) -> None:
    wait_until(lambda: waiting_for_locks() >= count, f"{count} attempts wait for a lock")


@contextmanager
def row_locked(model: type[Model], pk: int, *, no_key: bool = True) -> Iterator[None]:
    """Hold one row lock from the test's connection until the block ends.

    FOR NO KEY UPDATE (the default) blocks the services' FOR UPDATE and FOR NO KEY UPDATE, but not the key-share
    locks with which PostgreSQL checks the foreign keys of new bookings, messages and audit events. FOR UPDATE
    (`no_key=False`) blocks those as well.
    """
    with transaction.atomic():
        model.objects.select_for_update(no_key=no_key).get(pk=pk)
        yield


def hold(acting: ActingContext, slot: Slot) -> Booking:
    return booking_hold(acting=acting, slot_id=slot.pk)


def confirm(acting: ActingContext, held: Booking, *, key: uuid.UUID | None = None, email: str = "") -> Booking:
    return booking_confirm(
        acting=acting,
        hold_id=held.pk,
        contact=ContactDetails(phone=PHONE, email=email),
        idempotency_key=key or uuid.uuid4(),
    )


def hold_then_confirm(acting: ActingContext, slot: Slot) -> Callable[[], Booking]:
    return lambda: confirm(acting, hold(acting, slot))


def hold_only(acting: ActingContext, slot: Slot) -> Callable[[], Booking]:
    return lambda: hold(acting, slot)


def confirm_later(held: Booking, **kwargs) -> Callable[[], Booking]:
    acting = acting_for_hold(held)
    return lambda: confirm(acting, held, **kwargs)


def new_customer(organisation: Organisation | None = None) -> ActingContext:
    """Another partner's session, with a customer of their own locked."""
    return acting_for(organisation=organisation, customer=CustomerFactory())


def outcome_of(call: Callable[[], object]) -> object:
    try:
        return call()
    except Exception as error:  # as Attempt.run: the caller asserts on the type
        return error


def unexpected(outcomes: list[object], *expected: type) -> list[object]:
    return [outcome for outcome in outcomes if not isinstance(outcome, expected)]


def confirmed_in(slot: Slot) -> int:
    return Booking.objects.filter(slot=slot, status=Booking.Status.CONFIRMED).count()


def taking_capacity_in(slot: Slot) -> int:
    return Booking.objects.filter(slot=slot).taking_capacity(now=clock.now()).count()


# --- Capacity -------------------------------------------------------------------------------------------------------


def test_slot__fifty_partners_book_it_at_once__exactly_capacity_succeed() -> None:
    slot = SlotFactory(capacity=3)
    organisation = OrganisationFactory()
    calls = [hold_then_confirm(new_customer(organisation), slot) for _ in range(50)]

    outcomes = run_together(calls)

    assert unexpected(outcomes, Booking, SlotFullError) == []
    assert sum(isinstance(outcome, Booking) for outcome in outcomes) == 3
    assert sum(isinstance(outcome, SlotFullError) for outcome in outcomes) == 47
    assert confirmed_in(slot) == 3
    assert not Booking.objects.filter(slot=slot, status=Booking.Status.HELD).exists()
    assert taking_capacity_in(slot) == 3


@pytest.mark.parametrize("run", range(5))
def test_slot__expired_holds_confirmed_while_others_hold_and_book__never_exceeds_capacity(run) -> None:
    slot = SlotFactory(capacity=3)
    organisation = OrganisationFactory()
    expired = [BookingFactory.held(slot=slot, expires_at=clock.now() - dt.timedelta(minutes=1)) for _ in range(8)]
    BookingFactory.held(slot=slot)  # a live hold: two places are free
    calls = [confirm_later(held) for held in expired]
    calls += [hold_only(new_customer(organisation), slot) for _ in range(4)]
    calls += [hold_then_confirm(new_customer(organisation), slot) for _ in range(4)]

    outcomes = run_together(calls)

    assert unexpected(outcomes, Booking, SlotFullError) == []
    assert sum(isinstance(outcome, Booking) for outcome in outcomes) == 2
    assert taking_capacity_in(slot) == slot.capacity
    # Every expired hold was either confirmed or, refused, released.
    assert not Booking.objects.filter(pk__in=[held.pk for held in expired], status=Booking.Status.HELD).exists()


@pytest.mark.parametrize("run", range(3))
def test_slot__cancel_races_new_bookings__at_most_one_takes_the_freed_place(run) -> None:
    slot = SlotFactory(capacity=3)
    booked = BookingFactory.confirmed_batch(3, slot=slot)
    organisation = OrganisationFactory()
    cancelling = acting_for_hold(booked[0])
    calls: list[Callable[[], object]] = [
        lambda: booking_cancel(acting=cancelling, booking_id=booked[0].pk, reason="Race")
    ]
    calls += [hold_then_confirm(new_customer(organisation), slot) for _ in range(8)]

    cancelled, *outcomes = run_together(calls)

    assert isinstance(cancelled, Booking)
    assert unexpected(outcomes, Booking, SlotFullError) == []
    successes = sum(isinstance(outcome, Booking) for outcome in outcomes)
    assert successes <= 1
    assert confirmed_in(slot) == 2 + successes
    assert taking_capacity_in(slot) <= slot.capacity


@pytest.mark.parametrize("locked", ["slot, by the other partner's booking", "slot, both queued", "customer"])
def test_booking__confirm_of_a_hold_that_expired_while_waiting_for_a_lock__never_overbooks(locked) -> None:
    """Partner A's hold of the last place expires while A's confirm waits for a lock; meanwhile partner B takes
    the place. At most one of them gets it.

    The old design read the clock before its locks, and its confirm locked the customer and the slot with one
    statement, customer first. A's confirm still held its old time when it got the locks, thought the hold unexpired
    and confirmed it without counting: with B's booking, two confirmed bookings in a slot for one.
    - "customer": A's confirm waited for the customer and held no slot lock, so B held and confirmed the place in
      the meantime; A then confirmed as well (overbooked). Now A's confirm holds the slot while it waits for the
      customer: B queues behind it, A re-takes its expired hold because the place is still free, and B is refused.
    - "slot, by the other partner's booking": the slot lock A waits for is B's own request (the test's connection),
      which books the place while A waits. The old design confirmed A too (overbooked); now A reads the clock after
      the lock, sees its hold expired and the slot full, and is refused.
    - "slot, both queued": B's request queues behind A for the slot. The old design got this one right (A was
      first, and nothing took the place meanwhile); kept to pin the order: A re-takes the place, B is refused.
    """
    slot = SlotFactory(capacity=1)
    with time_machine.travel(clock.now(), tick=False) as traveller:
        a_acting = new_customer()
        a_hold = hold(a_acting, slot)
        traveller.shift(HOLD - dt.timedelta(seconds=1))  # one second left of A's hold
        b_acting = new_customer()

        if locked == "customer":
            with row_locked(Customer, a_acting.customer_id):
                a_confirming = started(lambda: confirm(a_acting, a_hold))
                wait_until_waiting_for_locks(1)  # A holds the slot, waiting for its customer
                traveller.shift(dt.timedelta(seconds=2))  # A's hold has expired
                b_booking = started(hold_then_confirm(b_acting, slot))
                wait_until(lambda: not b_booking.is_alive() or waiting_for_locks() >= 2, "B booked or queued")
            a_outcome, b_outcome = a_confirming.finish(), b_booking.finish()
            winner, loser = a_outcome, b_outcome
        elif locked == "slot, both queued":
            with row_locked(Slot, slot.pk):
                a_confirming = started(lambda: confirm(a_acting, a_hold))
                wait_until_waiting_for_locks(1)
                traveller.shift(dt.timedelta(seconds=2))
                b_booking = started(hold_then_confirm(b_acting, slot))
                wait_until_waiting_for_locks(2)  # B waits for the slot, behind A
            a_outcome, b_outcome = a_confirming.finish(), b_booking.finish()
            winner, loser = a_outcome, b_outcome
        else:
            with row_locked(Slot, slot.pk):
                a_confirming = started(lambda: confirm(a_acting, a_hold))
                wait_until_waiting_for_locks(1)
                traveller.shift(dt.timedelta(seconds=2))
                b_outcome = outcome_of(hold_then_confirm(b_acting, slot))  # in the transaction that holds the slot
            a_outcome = a_confirming.finish()
            winner, loser = b_outcome, a_outcome

        assert unexpected([a_outcome, b_outcome], Booking, SlotFullError) == []
        assert confirmed_in(slot) == 1  # never two
        assert taking_capacity_in(slot) == 1
        assert isinstance(winner, Booking)
        assert isinstance(loser, SlotFullError)
        assert Booking.objects.get(slot=slot, status=Booking.Status.CONFIRMED).pk == winner.pk


# --- The customer's rules and the double submit ---------------------------------------------------------------------


@pytest.mark.parametrize("clash", ["same-line", "overlapping-lines"])
def test_customer__booked_by_several_partners_at_once__exactly_one_succeeds(clash) -> None:
    customer = CustomerFactory()
    first = SlotFactory()
    if clash == "same-line":  # eight times of one line, hours apart
        others = [
            SlotFactory(service_line=first.service_line, starts_at=first.starts_at + dt.timedelta(hours=hours))
            for hours in range(1, 8)
        ]
    else:  # eight lines at the same time
        others = [SlotFactory(starts_at=first.starts_at) for _ in range(7)]
    holds = [hold(acting_for(customer=customer), slot) for slot in [first, *others]]

    outcomes = run_together([confirm_later(held) for held in holds])

    assert unexpected(outcomes, Booking, ExistingBookingError) == []
    winners = [outcome for outcome in outcomes if isinstance(outcome, Booking)]
    assert len(winners) == 1
    assert {outcome.existing.pk for outcome in outcomes if isinstance(outcome, ExistingBookingError)} == {winners[0].pk}
    assert list(Booking.objects.filter(customer=customer, status=Booking.Status.CONFIRMED)) == winners


def test_booking__confirm_submitted_twice_at_once__same_booking_and_one_message() -> None:
    held = BookingFactory.held()
    key = uuid.uuid4()

    with row_locked(Customer, held.customer_id):
        attempts = [started(confirm_later(held, key=key, email="aino@example.org")) for _ in range(2)]
        # Both past the idempotency check: one holds the slot and waits for the customer, one waits for the slot.
        wait_until_waiting_for_locks(2)
    outcomes = [attempt.finish() for attempt in attempts]

    assert unexpected(outcomes, Booking) == []
    assert {outcome.pk for outcome in outcomes} == {held.pk}
    assert Booking.objects.get(pk=held.pk).status == Booking.Status.CONFIRMED
    assert Message.objects.count() == 2  # one SMS and one e-mail, not two of each
    assert AuditEvent.objects.filter(action=AuditEvent.Action.BOOKING_CONFIRMED).count() == 1


# --- A partner's one hold -------------------------------------------------------------------------------------------


def _assert_one_hold_the_last_pick(acting: ActingContext, outcomes: list[object]) -> None:
    assert unexpected(outcomes, Booking) == []  # neither is "The booking could not be saved"
    remaining = Booking.objects.get(booked_by=acting.user)  # the other pick's hold was released
    assert remaining.status == Booking.Status.HELD
    # The later pick waited for the earlier one's commit before it inserted, so its hold has the higher id.
    assert remaining.pk == max(outcome.pk for outcome in outcomes)
    assert AuditEvent.objects.filter(actor=acting.user, action=AuditEvent.Action.BOOKING_HELD).count() == 2


@pytest.mark.parametrize("run", range(10))
def test_booking__two_tabs_pick_two_times_at_once__both_succeed_and_the_last_pick_is_held(run) -> None:
    """The same login (partner and customer) picks two different times at the same moment.

    The old design locked only the slot, so two picks of different slots did not wait for each other: both released
    the partner's earlier hold and inserted a new one, the second insert met the first in the one-hold-per-partner
    unique index, and after five attempts it gave up with "The booking could not be saved". Now the partner's row is
    locked first, so the picks run one after the other and the later one replaces the earlier.
    """
    acting = new_customer()
    first, second = SlotFactory(), SlotFactory()

    outcomes = run_together([hold_only(acting, first), hold_only(acting, second)])

    _assert_one_hold_the_last_pick(acting, outcomes)


def test_booking__two_tabs_pick_two_times_while_the_partner_row_is_locked__both_succeed_one_after_the_other() -> None:
    """The same as the barrier above, made certain: both picks are seen waiting for the partner's row, so they
    were at the same moment. The old design did not lock that row: only one pick was ever seen waiting (for the
    other's insert, in the unique index), and the second failed."""
    acting = new_customer()
    first, second = SlotFactory(), SlotFactory()

    with row_locked(User, acting.user.pk):
        picks = [started(hold_only(acting, slot)) for slot in (first, second)]
        wait_until_waiting_for_locks(2)
    outcomes = [pick.finish() for pick in picks]

    _assert_one_hold_the_last_pick(acting, outcomes)


@pytest.mark.parametrize("run", range(5))
def test_booking__double_click_on_one_time__both_succeed_and_one_hold_remains(run) -> None:
    """The same time picked twice at once. (The old design passed this one: the slot's lock serialised the two.)"""
    acting = new_customer()
    slot = SlotFactory()

    outcomes = run_together([hold_only(acting, slot), hold_only(acting, slot)])

    _assert_one_hold_the_last_pick(acting, outcomes)
    assert taking_capacity_in(slot) == 1


def test_booking__confirm_while_the_partner_picks_another_time__refused_cleanly() -> None:
    held = BookingFactory.held()
    acting = acting_for_hold(held)
    another_time = SlotFactory()

    with row_locked(Customer, held.customer_id):
        confirming = started(lambda: confirm(acting, held))
        wait_until_waiting_for_locks(1)  # holds the slot, waiting for the customer
        repicked = started(hold_only(acting, another_time)).finish()  # released the first hold and committed
    refused = confirming.finish()

    assert isinstance(repicked, Booking)
    assert type(refused) is HoldChangedError
    assert list(Booking.objects.filter(booked_by=acting.user)) == [repicked]
    assert not Message.objects.exists()


def test_booking__confirm_while_the_partner_picks_the_same_time_again__no_deadlock() -> None:
    """The pick, behind the confirm, sees the booking the confirm made: a time of the same matter, refused by the
    customer's rule (DESIGN.md §4 rule 4) rather than held a second time."""
    held = BookingFactory.held()
    acting = acting_for_hold(held)

    with row_locked(Slot, held.slot_id):
        confirming = started(lambda: confirm(acting, held))
        wait_until_waiting_for_locks(1)  # first in the queue for the slot
        picking = started(hold_only(acting, held.slot))
        wait_until_waiting_for_locks(2)  # holds the partner's row, waiting for the slot
    confirmed, repicked = confirming.finish(), picking.finish()

    assert isinstance(confirmed, Booking)
    assert isinstance(repicked, MatterBookedError)
    assert repicked.existing.pk == held.pk
    assert Booking.objects.get(pk=held.pk).status == Booking.Status.CONFIRMED
    assert taking_capacity_in(held.slot) == 1


def test_booking__partner_picks_another_time_while_the_confirm_commits__no_deadlock() -> None:
    """The pick takes the partner's row and then waits for the hold that the confirm has locked, while the confirm,
    committing, checks its audit event's foreign key to the partner's row. That check is a key-share lock, which the
    pick's FOR NO KEY UPDATE lets through; a plain FOR UPDATE of the partner would deadlock here."""
    held = BookingFactory.held()
    acting = acting_for_hold(held)
    another_time = SlotFactory()

    with row_locked(User, held.booked_by_id, no_key=False):
        picking = started(hold_only(acting, another_time))
        wait_until_waiting_for_locks(1)  # first in the queue for the partner's row
        confirming = started(lambda: confirm(acting, held))
        wait_until_waiting_for_locks(2)  # holds the slot, the customer and the hold; its commit waits for the partner
    repicked, confirmed = picking.finish(), confirming.finish()

    assert isinstance(confirmed, Booking)
    assert isinstance(repicked, Booking)
    assert Booking.objects.get(pk=held.pk).status == Booking.Status.CONFIRMED
    assert Booking.objects.get(booked_by=acting.user, status=Booking.Status.HELD).pk == repicked.pk


def test_booking__another_partner_holds_for_the_customer_while_confirming__no_deadlock() -> None:
    held = BookingFactory.held()
    acting = acting_for_hold(held)
    other = acting_for(customer=held.customer)

    with row_locked(Slot, held.slot_id):
        picking = started(hold_only(other, held.slot))
        wait_until_waiting_for_locks(1)  # first in the queue for the slot
        confirming = started(lambda: confirm(acting, held))
        wait_until_waiting_for_locks(2)  # waiting for the slot, behind the other partner
    other_hold, confirmed = picking.finish(), confirming.finish()

    assert isinstance(other_hold, Booking)
    assert isinstance(confirmed, Booking)
    assert taking_capacity_in(held.slot) == 2


def test_booking__moved_twice_at_once_to_two_times__one_move_and_the_other_refused_cleanly() -> None:
    """Two tabs move the same booking at once. The second move read the booking's time before its locks and locked
    that time and its new one; when it gets the booking, the first move has taken it elsewhere. The old design then
    failed with a KeyError (a 500); now it is refused, and nothing of it is written."""
    booked = BookingFactory.confirmed(contact_email="aino@example.org")
    acting = acting_for_hold(booked)
    first, second = (
        SlotFactory(service_line=booked.slot.service_line, starts_at=booked.slot.starts_at + dt.timedelta(hours=hours))
        for hours in (2, 4)
    )

    with row_locked(Customer, booked.customer_id):
        moving = started(lambda: booking_move(acting=acting, booking_id=booked.pk, slot_id=first.pk))
        wait_until_waiting_for_locks(1)  # holds both its times, waiting for the customer
        moving_again = started(lambda: booking_move(acting=acting, booking_id=booked.pk, slot_id=second.pk))
        wait_until_waiting_for_locks(2)  # waiting for the booking's old time
    moved, refused = moving.finish(), moving_again.finish()

    assert isinstance(moved, Booking)
    assert type(refused) is BookingError
    assert refused.message == "The booking could not be saved. Please try again."
    assert Booking.objects.get(pk=booked.pk).slot_id == first.pk
    assert AuditEvent.objects.filter(action=AuditEvent.Action.BOOKING_MOVED).count() == 1
    assert Message.objects.filter(kind=Booking.MessageKind.CHANGE).count() == 2  # one SMS and one e-mail


# --- The acting context ---------------------------------------------------------------------------------------------


def test_booking__confirm_after_the_organisation_was_deactivated__refused_and_the_hold_stays_unconfirmed() -> None:
    """The registry is asked at the confirm, not only when the organisation was chosen. The old design's confirm
    took the partner alone and never looked at the organisation again: it confirmed the booking."""
    held = BookingFactory.held()
    acting = acting_for_hold(held)
    Organisation.objects.filter(pk=held.organisation_id).update(is_active=False, removed_at=clock.now())

    refused = started(lambda: confirm(acting, held)).finish()

    assert type(refused) is ActingRefusedError
    assert refused.reason == "not_in_registry"
    assert Booking.objects.get(pk=held.pk).status == Booking.Status.HELD
    assert not Message.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.BOOKING_CONFIRMED).exists()


def test_booking__organisation_deactivated_while_the_confirm_waits_for_the_slot__refused() -> None:
    """The registry is asked at the moment of the confirm, like the clock: after the locks. Asked before them, a
    deactivation that commits while the confirm waits for the slot would let the booking through."""
    held = BookingFactory.held()
    acting = acting_for_hold(held)

    with row_locked(Slot, held.slot_id):
        confirming = started(lambda: confirm(acting, held))
        wait_until_waiting_for_locks(1)
        deactivating = started(
            lambda: Organisation.objects.filter(pk=held.organisation_id).update(is_active=False, removed_at=clock.now())
        )
        deactivating.finish()
    refused = confirming.finish()

    assert type(refused) is ActingRefusedError
    assert Booking.objects.get(pk=held.pk).status == Booking.Status.HELD
