"""The booking rules of DESIGN.md §4 through the services and selectors: capacity, holds, confirm, cancel, messages,
and the acting context each of them checks (rule 6)."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Permission
from django.utils import dateformat, timezone, translation

from bookings.models import Booking, Customer, Slot
from bookings.selectors import customer_bookings, free_slots, register_contact
from bookings.services import (
    BookingError,
    HoldChangedError,
    MatterBookedError,
    SlotFullError,
    TimeBookedError,
    booking_cancel,
    booking_confirm,
    booking_hold,
    customer_find_or_create,
    customer_overview,
    register_contact_show,
)
from bookings.services.booking import ContactDetails, new_reference
from kelabooking import clock
from kelabooking.delivery import message_render
from kelabooking.models import Message
from partners.context import ActingContext, ActingRefusedError, CustomerLockedError
from partners.models import AuditEvent, User
from registry.models import Organisation
from tests.factories import (
    BookingFactory,
    CustomerFactory,
    OrganisationFactory,
    PartnerFactory,
    ServiceLineFactory,
    SlotFactory,
    UserFactory,
    acting_for,
    acting_for_hold,
    acting_staff,
)

pytestmark = pytest.mark.django_db

PHONE = "+358401234567"
REFERENCE_RE = re.compile(r"^[A-HJ-NP-Z2-9]{3}-[A-HJ-NP-Z2-9]{4}$")
HOLD = dt.timedelta(minutes=settings.BOOKING_HOLD_MINUTES)


@pytest.fixture
def now() -> dt.datetime:
    return clock.now()


def hold(
    slot: Slot,
    *,
    now: dt.datetime,
    customer: Customer | None = None,
    partner: User | None = None,
    organisation: Organisation | None = None,
) -> Booking:
    """A partner holds `slot` for `customer`, with the clock at `now` (the service reads it after its locks)."""
    acting = acting_for(
        partner or PartnerFactory(),
        organisation=organisation or OrganisationFactory(),
        customer=customer or CustomerFactory(),
    )
    with time_machine.travel(now, tick=False):
        return booking_hold(acting=acting, slot_id=slot.pk)


def confirm(
    held: Booking,
    *,
    now: dt.datetime,
    key: uuid.UUID | None = None,
    acting: ActingContext | None = None,
    **contact: str,
) -> Booking:
    """`held` confirmed in `acting` (by default the context it was held in), with the clock at `now`."""
    with time_machine.travel(now, tick=False):
        return booking_confirm(
            acting=acting or acting_for_hold(held),
            hold_id=held.pk,
            contact=ContactDetails(**({"phone": PHONE} | contact)),
            idempotency_key=key or uuid.uuid4(),
        )


def cancel(
    booking: Booking,
    *,
    now: dt.datetime,
    actor: User | None = None,
    acting: ActingContext | None = None,
    reason: str = "",
) -> Booking:
    """The locked customer's booking cancelled by `actor` (by default the partner who booked it), or in `acting`."""
    acting = acting or acting_for(
        actor or booking.booked_by, organisation=booking.organisation, customer=booking.customer
    )
    with time_machine.travel(now, tick=False):
        return booking_cancel(acting=acting, booking_id=booking.pk, reason=reason)


def later(slot: Slot, steps: int = 1, **kwargs) -> Slot:
    """A slot of the same line and language `steps` appointments after `slot`."""
    starts_at = slot.starts_at + steps * (slot.ends_at - slot.starts_at)
    fields = {"service_line": slot.service_line, "language": slot.language, "starts_at": starts_at} | kwargs
    return SlotFactory(**fields)


def deactivate(organisation: Organisation) -> None:
    """The organisation leaves the registry while its partner is signed in."""
    Organisation.objects.filter(pk=organisation.pk).update(is_active=False, removed_at=clock.now())


def staff_with(*codenames: str) -> User:
    """FPA staff with these permissions of the bookings app."""
    user = UserFactory(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="bookings", codename__in=codenames))
    return user


def fail_audit(monkeypatch) -> None:
    def refuse(**_kwargs):
        raise RuntimeError("the audit trail could not be written")

    monkeypatch.setattr("bookings.services.booking.audit_event_record", refuse)


# --- holding a time -------------------------------------------------------------------------------------------------


def test_booking__hold__takes_capacity_until_it_expires(now) -> None:
    slot = SlotFactory(capacity=1)

    first = hold(slot, now=now)

    assert first.status == Booking.Status.HELD
    assert first.hold_expires_at == now + HOLD
    with pytest.raises(SlotFullError):
        hold(slot, now=now + HOLD - dt.timedelta(seconds=1))
    # The moment the hold expires it stops counting: nothing has to clean it up first.
    second = hold(slot, now=now + HOLD)
    assert second.status == Booking.Status.HELD


def test_booking__hold__counts_confirmed_bookings_and_live_holds_only(now) -> None:
    slot = SlotFactory(capacity=3)
    BookingFactory.confirmed(slot=slot)
    BookingFactory.cancelled(slot=slot)
    BookingFactory.held(slot=slot, expires_at=now)
    BookingFactory.held(slot=slot, expires_at=now + dt.timedelta(minutes=1))

    hold(slot, now=now)  # two of three places were taken

    with pytest.raises(SlotFullError):
        hold(slot, now=now)
    assert Booking.objects.filter(slot=slot).taking_capacity(now=now).count() == 3


def test_booking__hold__new_pick_releases_the_partners_previous_hold(now) -> None:
    partner, customer = PartnerFactory(), CustomerFactory()
    first_slot = SlotFactory(capacity=1)
    first = hold(first_slot, now=now, partner=partner, customer=customer)

    second = hold(SlotFactory(), now=now, partner=partner, customer=customer)

    assert list(Booking.objects.filter(booked_by=partner)) == [second]
    assert not Booking.objects.filter(pk=first.pk).exists()
    assert hold(first_slot, now=now).slot == first_slot  # released for everyone at once


def test_booking__hold__same_partner_can_pick_its_own_full_time_again(now) -> None:
    slot = SlotFactory(capacity=1)
    partner = PartnerFactory()
    first = hold(slot, now=now, partner=partner)

    again = hold(slot, now=now, partner=partner, customer=first.customer)

    assert list(Booking.objects.filter(slot=slot)) == [again]


def test_booking__hold__fails_with_nearest_free_times_when_slot_full(now) -> None:
    full = SlotFactory.full(capacity=2)
    free_1 = later(full, 1)
    BookingFactory.held(slot=later(full, 2, capacity=1))  # full with a live hold
    free_2 = later(full, 3)
    free_3 = later(full, 4)
    later(full, 5)  # a fourth free time is not offered
    later(full, 1, language="sv")  # another language
    SlotFactory(starts_at=free_1.starts_at)  # another line

    with pytest.raises(SlotFullError) as refused:
        hold(full, now=now)

    assert refused.value.alternatives == [free_1, free_2, free_3]
    assert Booking.objects.filter(slot=full).count() == 2


@pytest.mark.parametrize(
    "starts_in",
    [
        pytest.param(-dt.timedelta(hours=1), id="past"),
        pytest.param(dt.timedelta(minutes=settings.BOOKING_MIN_NOTICE_MINUTES - 1), id="before-minimum-notice"),
        pytest.param(dt.timedelta(weeks=settings.BOOKING_HORIZON_WEEKS, minutes=1), id="beyond-horizon"),
    ],
)
def test_booking__hold__fails_outside_bookable_window(now, starts_in) -> None:
    slot = SlotFactory(starts_at=now + starts_in)

    with pytest.raises(BookingError) as refused:
        hold(slot, now=now)

    assert type(refused.value) is BookingError
    assert not Booking.objects.exists()


@pytest.mark.parametrize(
    "starts_in",
    [
        pytest.param(dt.timedelta(minutes=settings.BOOKING_MIN_NOTICE_MINUTES), id="at-minimum-notice"),
        pytest.param(dt.timedelta(weeks=settings.BOOKING_HORIZON_WEEKS), id="at-horizon"),
    ],
)
def test_booking__hold__succeeds_at_the_edges_of_the_bookable_window(now, starts_in) -> None:
    slot = SlotFactory(starts_at=now + starts_in)

    assert hold(slot, now=now).slot == slot


def test_booking__hold__fails_for_inactive_service_line(now) -> None:
    slot = SlotFactory(service_line=ServiceLineFactory.inactive())

    with pytest.raises(BookingError) as refused:
        hold(slot, now=now)

    assert type(refused.value) is BookingError
    assert not Booking.objects.exists()


def test_booking__hold__fails_for_unknown_slot(now) -> None:
    unknown_id = SlotFactory().pk + 1000

    with pytest.raises(BookingError) as refused:
        booking_hold(acting=acting_for(customer=CustomerFactory()), slot_id=unknown_id)

    assert type(refused.value) is BookingError
    assert not Booking.objects.exists()


def test_booking__hold__draws_again_when_reference_collides(now, monkeypatch) -> None:
    existing = BookingFactory.confirmed()
    references = iter([existing.reference, "ABC-2345"])
    monkeypatch.setattr("bookings.services.booking.new_reference", lambda: next(references))

    held = hold(SlotFactory(), now=now)

    assert held.reference == "ABC-2345"


def test_booking__hold__audit_event_names_the_held_time(now) -> None:
    held = hold(SlotFactory(), now=now)

    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.customer) == (
        AuditEvent.Action.BOOKING_HELD,
        held.booked_by,
        held.customer,
    )
    assert (event.organisation_business_id, event.request_id) == (held.organisation.business_id, "test-request-0001")
    # A released hold is deleted, so the event names it instead of linking to its row.
    assert (event.booking, event.details) == (None, {"reference": held.reference, "slot": held.slot_id})


# --- confirming -----------------------------------------------------------------------------------------------------


def test_booking__confirm__turns_hold_into_booking(now) -> None:
    held = hold(SlotFactory(), now=now)
    key = uuid.uuid4()
    at = now + dt.timedelta(minutes=3)

    booking = confirm(held, now=at, key=key, phone="+46701234567", email="aino@example.org", description="Asumistuki")

    booking.refresh_from_db()
    assert (booking.pk, booking.reference) == (held.pk, held.reference)
    assert booking.status == Booking.Status.CONFIRMED
    assert booking.confirmed_at == at
    assert booking.hold_expires_at is None
    assert (booking.contact_phone, booking.contact_email) == ("+46701234567", "aino@example.org")
    assert booking.description == "Asumistuki"
    assert booking.idempotency_key == key
    assert Booking.objects.filter(slot=held.slot).taking_capacity(now=at).get() == booking


@pytest.mark.parametrize(("language", "needed"), [("", False), ("ar", True)])
def test_booking__confirm__stores_interpreter_fields_consistently(now, language, needed) -> None:
    booking = confirm(hold(SlotFactory(), now=now), now=now, interpreter_language=language)

    booking.refresh_from_db()
    assert (booking.interpreter_needed, booking.interpreter_language) == (needed, language)


def test_booking__confirm__same_idempotency_key_returns_same_booking_and_messages_once(now) -> None:
    held = hold(SlotFactory(), now=now)
    key = uuid.uuid4()

    first = confirm(held, now=now, key=key, email="aino@example.org")
    second = confirm(held, now=now + dt.timedelta(seconds=2), key=key, email="aino@example.org")

    assert second.pk == first.pk
    assert second.confirmed_at == now
    assert Booking.objects.filter(customer=held.customer).count() == 1
    assert sorted(Message.objects.values_list("channel", flat=True)) == [Message.Channel.EMAIL, Message.Channel.SMS]


def test_booking__confirm__retakes_expired_hold_when_capacity_remains(now) -> None:
    slot = SlotFactory(capacity=2)
    held = hold(slot, now=now)
    BookingFactory.confirmed(slot=slot)
    at = now + HOLD + dt.timedelta(minutes=5)

    booking = confirm(held, now=at)

    assert booking.status == Booking.Status.CONFIRMED
    assert Booking.objects.filter(slot=slot).taking_capacity(now=at).count() == 2


def test_booking__confirm__fails_when_hold_expired_and_slot_full(now) -> None:
    slot = SlotFactory(capacity=1)
    free = later(slot)
    customer = CustomerFactory.not_in_register()
    held = hold(slot, now=now, customer=customer)
    other = hold(slot, now=now + HOLD)  # the expired hold stopped counting and someone else took the place

    with pytest.raises(SlotFullError) as refused:
        confirm(held, now=now + HOLD, email="aino@example.org", first_name="Aino", last_name="Asiakas")

    assert refused.value.alternatives == [free]
    assert not Booking.objects.filter(pk=held.pk).exists()  # released, so the partner is not shown it again
    assert list(Booking.objects.filter(slot=slot)) == [other]
    customer.refresh_from_db()
    assert (customer.first_name, customer.last_name) == ("", "")
    assert not Message.objects.exists()


def test_booking__confirm__fails_for_another_partners_hold(now) -> None:
    held = hold(SlotFactory(), now=now)

    with pytest.raises(HoldChangedError), time_machine.travel(now, tick=False):
        booking_confirm(
            acting=acting_for(PartnerFactory(), organisation=held.organisation, customer=held.customer),
            hold_id=held.pk,
            contact=ContactDetails(phone=PHONE),
            idempotency_key=uuid.uuid4(),
        )

    held.refresh_from_db()
    assert held.status == Booking.Status.HELD
    assert held.contact_phone == ""


def test_booking__confirm__audit_event_written_with_the_booking(now) -> None:
    held = hold(SlotFactory(), now=now)

    booking = confirm(held, now=now)

    event = AuditEvent.objects.get(action=AuditEvent.Action.BOOKING_CONFIRMED)
    assert (event.booking, event.customer, event.actor) == (booking, booking.customer, booking.booked_by)
    assert (event.organisation_business_id, event.request_id) == (booking.organisation.business_id, "test-request-0001")


@pytest.mark.parametrize("change", ["hold", "confirm", "cancel"])
def test_booking__audit_event_fails__nothing_of_the_change_is_kept(
    now, monkeypatch, django_capture_on_commit_callbacks, change
) -> None:
    """The services write their audit event in the change's own transaction: no change without its event."""
    slot, held, booked = SlotFactory(), hold(SlotFactory(), now=now), BookingFactory.confirmed(contact_email="a@b.fi")
    before = {booking.pk: (booking.status, booking.slot_id) for booking in Booking.objects.all()}
    fail_audit(monkeypatch)

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError):
        {
            # The same partner picks another time: not even the release of the earlier hold is kept.
            "hold": lambda: hold(slot, now=now, partner=held.booked_by, customer=held.customer),
            "confirm": lambda: confirm(held, now=now, email="a@b.fi"),
            "cancel": lambda: cancel(booked, now=now),
        }[change]()

    assert {booking.pk: (booking.status, booking.slot_id) for booking in Booking.objects.all()} == before
    assert not Message.objects.exists()
    assert callbacks == []  # nor is a send task queued after the commit
    assert AuditEvent.objects.filter(action=AuditEvent.Action.BOOKING_HELD).count() == 1  # the setup's hold


@pytest.mark.parametrize("other_bookings", [0, 5])
def test_booking__confirm__runs_a_bounded_number_of_queries(now, django_assert_max_num_queries, other_bookings) -> None:
    held = hold(SlotFactory(), now=now)
    acting = acting_for_hold(held)
    BookingFactory.create_batch(other_bookings, customer=held.customer)  # the customer's history adds no query
    for _ in range(other_bookings):
        BookingFactory.cancelled(slot=held.slot)  # nor does the slot's

    with django_assert_max_num_queries(10):
        confirm(held, now=now, acting=acting, email="aino@example.org")


# --- DESIGN.md §4 rule 4: the customer's other bookings ----------------------------------------------------------
# One case table for the three that apply the rule: the time step's selector leaves out what the hold refuses
# and what the confirm, under the customer's lock, refuses when it was booked meanwhile.

MATTER_BOOKED = "The customer already has a booked time for this matter. Cancel it first if a new time is needed."
TIME_BOOKED = "The customer already has another booking at this time. Choose another time."
RULE_4_CASES = [
    pytest.param("same line, later", MatterBookedError, id="same-line"),
    pytest.param("same line, later, cancelled", None, id="same-line-cancelled"),
    pytest.param("same line, past", None, id="same-line-past"),
    pytest.param("same line, later, held", None, id="same-line-held"),
    pytest.param("same line, later, another customer's", None, id="same-line-another-customer"),
    pytest.param("another line, overlapping its end", TimeBookedError, id="overlapping-end"),
    pytest.param("another line, overlapping its start", TimeBookedError, id="overlapping-start"),
    pytest.param("another line, the same time", TimeBookedError, id="same-time"),
    pytest.param("another line, back to back", None, id="back-to-back"),
    pytest.param("another line, just before", None, id="just-before"),
]


def other_booking(other: str, *, slot: Slot, customer: Customer, now: dt.datetime) -> Booking:
    """The customer's (or another customer's) booking that `other` describes, beside `slot`."""
    length = slot.ends_at - slot.starts_at
    if other.startswith("same line"):
        other_slot = later(slot, starts_at=now - dt.timedelta(days=1)) if "past" in other else later(slot, 4)
    else:
        starts_at = {
            "another line, overlapping its end": slot.starts_at + dt.timedelta(minutes=15),
            "another line, overlapping its start": slot.starts_at - dt.timedelta(minutes=15),
            "another line, the same time": slot.starts_at,
            "another line, back to back": slot.ends_at,
            "another line, just before": slot.starts_at - length,
        }[other]
        other_slot = SlotFactory(starts_at=starts_at, ends_at=starts_at + length)
    status = "cancelled" if "cancelled" in other else "held" if "held" in other else "confirmed"
    owner = CustomerFactory() if "another customer" in other else customer
    return getattr(BookingFactory, status)(customer=owner, slot=other_slot)


@pytest.mark.parametrize(("other", "refusal"), RULE_4_CASES)
def test_free_slots__for_a_customer__leaves_out_the_times_the_rule_refuses(now, other, refusal) -> None:
    customer = CustomerFactory()
    slot = SlotFactory()
    other_booking(other, slot=slot, customer=customer, now=now)

    window = {"service_line": slot.service_line, "language": "fi", "start": slot.starts_at, "end": slot.ends_at}
    offered = free_slots(**window, now=now, customer_id=customer.pk)

    assert offered == ([] if refusal else [slot])
    assert free_slots(**window, now=now) == [slot]  # without a customer, every free time


@pytest.mark.parametrize(("other", "refusal"), RULE_4_CASES)
def test_booking__hold__refused_by_the_customers_upcoming_confirmed_bookings_with_the_rules_error(
    now, other, refusal
) -> None:
    """A crafted request holds no time the time step leaves out; the partner's earlier hold stays."""
    customer, partner = CustomerFactory(), PartnerFactory()
    earlier = hold(SlotFactory(starts_at=now + dt.timedelta(days=20)), now=now, partner=partner, customer=customer)
    slot = SlotFactory()
    existing = other_booking(other, slot=slot, customer=customer, now=now)

    if refusal:
        with pytest.raises(refusal) as refused:
            hold(slot, now=now, partner=partner, customer=customer, organisation=earlier.organisation)
        assert refused.value.existing == existing
        assert str(refused.value.message) == {MatterBookedError: MATTER_BOOKED, TimeBookedError: TIME_BOOKED}[refusal]
        assert list(Booking.objects.filter(booked_by=partner)) == [earlier]
    else:
        held = hold(slot, now=now, partner=partner, customer=customer, organisation=earlier.organisation)
        assert list(Booking.objects.filter(booked_by=partner)) == [held]


@pytest.mark.parametrize(("other", "refusal"), RULE_4_CASES)
def test_booking__confirm__refused_by_what_the_customer_booked_meanwhile(now, other, refusal) -> None:
    """After the hold: the confirm decides under the customer's lock, whatever the earlier steps were shown."""
    customer = CustomerFactory()
    slot = SlotFactory()
    held = hold(slot, now=now, customer=customer)
    existing = other_booking(other, slot=slot, customer=customer, now=now)

    if refusal:
        with pytest.raises(refusal) as refused:
            confirm(held, now=now, email="aino@example.org")
        assert refused.value.existing == existing
        held.refresh_from_db()
        assert held.status == Booking.Status.HELD
        assert not Message.objects.exists()
    else:
        assert confirm(held, now=now).status == Booking.Status.CONFIRMED


def test_booking__confirm__earliest_of_several_conflicts_named_and_the_same_matter_first(now) -> None:
    customer = CustomerFactory()
    slot = SlotFactory()
    held = hold(slot, now=now, customer=customer)
    overlapping = BookingFactory.confirmed(customer=customer, slot=SlotFactory(starts_at=slot.starts_at))
    same_line = BookingFactory.confirmed(customer=customer, slot=later(slot, 4))

    with pytest.raises(MatterBookedError) as refused:
        confirm(held, now=now)
    assert refused.value.existing == same_line

    same_line.delete()
    with pytest.raises(TimeBookedError) as refused:
        confirm(held, now=now)
    assert refused.value.existing == overlapping


def test_booking__hold__organisation_left_the_registry__refused_and_nothing_written(now) -> None:
    first = hold(SlotFactory(), now=now)
    acting = acting_for_hold(first)
    deactivate(first.organisation)

    with pytest.raises(ActingRefusedError) as refused, time_machine.travel(now, tick=False):
        booking_hold(acting=acting, slot_id=SlotFactory().pk)

    assert refused.value.reason == "not_in_registry"
    assert list(Booking.objects.values_list("pk", "status")) == [(first.pk, Booking.Status.HELD)]  # not released
    assert AuditEvent.objects.count() == 1  # the first hold's


def test_booking__hold__organisation_deactivated_before_the_hold__refused(now) -> None:
    with pytest.raises(ActingRefusedError) as refused:
        hold(SlotFactory(), now=now, organisation=OrganisationFactory.deactivated())

    assert refused.value.reason == "not_in_registry"
    assert not Booking.objects.exists()
    assert not AuditEvent.objects.exists()


def test_booking__confirm__organisation_left_the_registry__refused_and_hold_stays_held(now) -> None:
    held = hold(SlotFactory(), now=now)
    deactivate(held.organisation)

    with pytest.raises(ActingRefusedError) as refused:
        confirm(held, now=now, email="aino@example.org")

    assert refused.value.reason == "not_in_registry"
    held.refresh_from_db()
    assert (held.status, held.contact_phone, held.idempotency_key) == (Booking.Status.HELD, "", None)
    assert not Message.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.BOOKING_CONFIRMED).exists()


def test_booking__confirm__hold_taken_for_another_organisation__refused_and_stays_held(now) -> None:
    """A partner with mandates for two organisations: a time held for A is never booked in B's name."""
    held = hold(SlotFactory(), now=now)
    acting_for_b = acting_for(held.booked_by, organisation=OrganisationFactory(), customer=held.customer)

    with pytest.raises(HoldChangedError):
        confirm(held, now=now, acting=acting_for_b)

    organisation_id = held.organisation_id
    held.refresh_from_db()
    assert (held.status, held.organisation_id, held.idempotency_key) == (Booking.Status.HELD, organisation_id, None)
    assert not Message.objects.exists()


def test_booking__confirm__hold_released_by_a_later_pick__refused_and_nothing_booked(now) -> None:
    """Tab 1's check page names hold X; tab 2 then picked Y, which released X. Confirming X books nothing."""
    checked = hold(SlotFactory(), now=now)
    acting = acting_for_hold(checked)
    with time_machine.travel(now, tick=False):
        current = booking_hold(acting=acting, slot_id=SlotFactory().pk)

    with pytest.raises(HoldChangedError):
        confirm(checked, now=now, acting=acting)

    assert list(Booking.objects.values_list("pk", "status")) == [(current.pk, Booking.Status.HELD)]
    assert not Message.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.BOOKING_CONFIRMED).exists()


def test_booking__confirm__another_partners_current_hold__refused(now) -> None:
    theirs = hold(SlotFactory(), now=now)
    mine = hold(SlotFactory(), now=now, organisation=theirs.organisation, customer=theirs.customer)

    with pytest.raises(HoldChangedError):
        confirm(theirs, now=now, acting=acting_for_hold(mine))

    theirs.refresh_from_db()
    assert theirs.status == Booking.Status.HELD


def test_booking__confirm__stores_typed_names_for_customer_not_in_register(now) -> None:
    customer = CustomerFactory.not_in_register()

    confirm(hold(SlotFactory(), now=now, customer=customer), now=now, first_name="Aino", last_name="Uusi")

    customer.refresh_from_db()
    assert (customer.first_name, customer.last_name) == ("Aino", "Uusi")


def test_booking__confirm__keeps_register_names_of_customer_in_register(now) -> None:
    customer = CustomerFactory(first_name="Aino", last_name="Rekisteri")

    confirm(hold(SlotFactory(), now=now, customer=customer), now=now, first_name="Aino", last_name="Uusi")

    customer.refresh_from_db()
    assert (customer.first_name, customer.last_name) == ("Aino", "Rekisteri")


# --- messages -------------------------------------------------------------------------------------------------------


def weekday_in(language: str, moment: dt.datetime) -> str:
    """The weekday as Django's own catalogues spell it in `language` (project catalogues may still lack strings)."""
    with translation.override(language):
        return dateformat.format(timezone.localtime(moment), "l")


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_booking__confirm__queues_email_in_slot_language(now, language) -> None:
    slot = SlotFactory(language=language)

    with translation.override("fi" if language != "fi" else "sv"):  # the partner's UI language does not matter
        booking = confirm(hold(slot, now=now), now=now, email="aino@example.org")

    message = message_render(Message.objects.get(channel=Message.Channel.EMAIL))
    assert (message.kind, message.channel) == (Booking.MessageKind.CONFIRMATION, Message.Channel.EMAIL)
    assert (message.recipient, message.language) == ("aino@example.org", language)
    assert booking.reference in message.subject
    assert booking.reference in message.body
    assert weekday_in(language, slot.starts_at) in message.body
    assert message.status == Message.Status.PENDING


@pytest.mark.parametrize("build_customer", [CustomerFactory, CustomerFactory.non_disclosure])
def test_booking__confirm__queues_no_email_without_address_for_this_booking(now, build_customer) -> None:
    customer = build_customer(email="register@example.org")

    confirm(hold(SlotFactory(), now=now, customer=customer), now=now, email="")

    assert list(Message.objects.values_list("channel", "recipient")) == [(Message.Channel.SMS, PHONE)]


# --- cancelling -----------------------------------------------------------------------------------------------------


def test_booking__cancel__frees_capacity_at_once(now) -> None:
    slot = SlotFactory(capacity=1)
    booking = BookingFactory.confirmed(slot=slot)
    with pytest.raises(SlotFullError):
        hold(slot, now=now)

    cancel(booking, now=now, reason="Asiakas peruutti.")

    assert hold(slot, now=now).slot == slot


def test_booking__cancel__records_who_when_and_why(now) -> None:
    booking = BookingFactory.confirmed()
    actor = PartnerFactory()

    cancel(booking, now=now, actor=actor, reason="  The customer got a time elsewhere.  ")

    booking.refresh_from_db()
    assert booking.status == Booking.Status.CANCELLED
    assert (booking.cancelled_at, booking.cancelled_by) == (now, actor)
    assert booking.cancellation_reason == "The customer got a time elsewhere."
    event = AuditEvent.objects.get()
    assert (event.action, event.booking, event.actor, event.details) == (
        AuditEvent.Action.BOOKING_CANCELLED,
        booking,
        actor,
        {},
    )


@pytest.mark.parametrize(
    "starts_in",
    [pytest.param(dt.timedelta(0), id="starting-now"), pytest.param(-dt.timedelta(days=1), id="past")],
)
def test_booking__cancel__fails_for_booking_not_in_future(now, starts_in) -> None:
    booking = BookingFactory.confirmed(slot=SlotFactory(starts_at=now + starts_in), contact_email="aino@example.org")

    with pytest.raises(BookingError):
        cancel(booking, now=now)

    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED
    assert not Message.objects.exists()


@pytest.mark.parametrize("build", [BookingFactory.cancelled, BookingFactory.held])
def test_booking__cancel__fails_for_booking_not_confirmed(now, build) -> None:
    booking = build(contact_email="aino@example.org")
    before = (booking.status, booking.cancelled_at, booking.cancelled_by_id)

    with pytest.raises(BookingError):
        cancel(booking, now=now, actor=PartnerFactory(), reason="Again")

    booking.refresh_from_db()
    assert (booking.status, booking.cancelled_at, booking.cancelled_by_id) == before
    assert not Message.objects.exists()


def test_booking__cancel__another_customers_booking__refused_and_nothing_written(now) -> None:
    booking = BookingFactory.confirmed(contact_email="aino@example.org")
    acting = acting_for(booking.booked_by, organisation=booking.organisation, customer=CustomerFactory())

    with pytest.raises(BookingError):
        cancel(booking, now=now, acting=acting)

    booking.refresh_from_db()
    assert (booking.status, booking.cancelled_at) == (Booking.Status.CONFIRMED, None)
    assert not Message.objects.exists()
    assert not AuditEvent.objects.exists()


def test_booking__cancel__organisation_left_the_registry__refused_and_nothing_written(now) -> None:
    booking = BookingFactory.confirmed(organisation=OrganisationFactory.deactivated())

    with pytest.raises(ActingRefusedError) as refused:
        cancel(booking, now=now)

    assert refused.value.reason == "not_in_registry"
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED
    assert not Message.objects.exists()
    assert not AuditEvent.objects.exists()


def test_booking__cancel__by_staff_with_change_permission__cancelled_and_audited_as_admin(now) -> None:
    booking = BookingFactory.confirmed(contact_email="aino@example.org")
    staff = staff_with("view_booking", "change_booking")

    cancel(booking, now=now, acting=acting_staff(staff), reason="Agent sick")

    booking.refresh_from_db()
    assert (booking.status, booking.cancelled_by, booking.cancelled_at) == (Booking.Status.CANCELLED, staff, now)
    assert booking.cancellation_reason == "Agent sick"
    assert Message.objects.filter(kind=Booking.MessageKind.CANCELLATION).count() == 2
    event = AuditEvent.objects.get()
    assert (event.action, event.booking, event.customer, event.actor, event.details) == (
        AuditEvent.Action.BOOKING_CANCELLED,
        booking,
        booking.customer,
        staff,
        {"by": "admin"},
    )


@pytest.mark.parametrize("codenames", [(), ("view_booking",)], ids=["no-permission", "view-only"])
def test_booking__cancel__by_staff_without_change_permission__refused(now, codenames) -> None:
    booking = BookingFactory.confirmed()

    with pytest.raises(ActingRefusedError):
        cancel(booking, now=now, acting=acting_staff(staff_with(*codenames)))

    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED
    assert not AuditEvent.objects.exists()


def test_booking__cancel__queues_cancellation_message_in_slot_language(now) -> None:
    booking = BookingFactory.confirmed(slot=SlotFactory(language="sv"), contact_email="aino@example.org")

    cancel(booking, now=now)

    message = message_render(Message.objects.get(channel=Message.Channel.EMAIL))
    assert (message.kind, message.channel) == (Booking.MessageKind.CANCELLATION, Message.Channel.EMAIL)
    assert (message.recipient, message.language) == ("aino@example.org", "sv")
    assert booking.reference in message.subject
    assert weekday_in("sv", booking.slot.starts_at) in message.body


# --- references -----------------------------------------------------------------------------------------------------


def test_booking__reference__is_short_and_unambiguous(now) -> None:
    references = {new_reference() for _ in range(2000)}

    assert all(REFERENCE_RE.match(reference) for reference in references)
    assert not set("".join(references)) & set("0O1I")
    assert len(references) > 1990  # random, not a short cycle
    assert REFERENCE_RE.match(hold(SlotFactory(), now=now).reference)


# --- customers ------------------------------------------------------------------------------------------------------


def test_customer__find_or_create__returns_register_customer_or_creates_one_entered_by_partner() -> None:
    known = CustomerFactory()

    acting = acting_for()
    assert customer_find_or_create(acting=acting, identity_code=known.identity_code) == known
    created = customer_find_or_create(acting=acting, identity_code="010130-999X")
    assert created.source == Customer.Source.ENTERED_BY_PARTNER
    assert customer_find_or_create(acting=acting, identity_code="010130-999X") == created


def test_customer__find_or_create__another_customer_once_locked__refused_and_none_created() -> None:
    locked, other = CustomerFactory(), CustomerFactory()
    acting = acting_for(customer=locked)

    for identity_code in (other.identity_code, "010130-999X"):  # in the register, and not
        with pytest.raises(CustomerLockedError):
            customer_find_or_create(acting=acting, identity_code=identity_code)

    assert set(Customer.objects.all()) == {locked, other}
    assert customer_find_or_create(acting=acting, identity_code=locked.identity_code) == locked  # the same is fine


def test_customer__find_or_create__organisation_left_the_registry__refused_and_none_created() -> None:
    acting = acting_for(organisation=OrganisationFactory.deactivated())

    with pytest.raises(ActingRefusedError) as refused:
        customer_find_or_create(acting=acting, identity_code="010130-999X")

    assert refused.value.reason == "not_in_registry"
    assert not Customer.objects.exists()


def test_customer__find_or_create__records_the_opening_of_the_customer_it_returns() -> None:
    """The customer step is the opening: every later page of the session shows this customer (name, bookings), so a
    partner who never looks at the overview has opened them too."""
    known = CustomerFactory()
    acting = acting_for()

    customer_find_or_create(acting=acting, identity_code=known.identity_code)
    created = customer_find_or_create(acting=acting, identity_code="010130-999X")

    events = AuditEvent.objects.order_by("pk")
    assert [(event.action, event.customer, event.actor) for event in events] == [
        (AuditEvent.Action.CUSTOMER_OPENED, known, acting.user),
        (AuditEvent.Action.CUSTOMER_OPENED, created, acting.user),
    ]


def test_customer__register_contact_shown__only_of_the_customer_this_login_locked() -> None:
    locked, other = CustomerFactory(), CustomerFactory()

    with pytest.raises(CustomerLockedError):
        register_contact_show(acting=acting_for(customer=locked), customer=other)

    assert not AuditEvent.objects.exists()
    assert register_contact_show(acting=acting_for(customer=locked), customer=locked) is not None


def test_customer__overview__records_the_contact_details_shown(now) -> None:
    customer = CustomerFactory()
    upcoming = BookingFactory.confirmed(customer=customer)
    past = BookingFactory.confirmed(customer=customer, slot=SlotFactory(starts_at=now - dt.timedelta(days=3)))
    cancelled = BookingFactory.cancelled(customer=customer)
    BookingFactory.held(customer=customer)  # not a booking yet
    acting = acting_for(customer=customer)

    with time_machine.travel(now, tick=False):
        overview = customer_overview(acting=acting)

    assert overview.customer == customer
    assert overview.contact == register_contact(customer=customer)
    assert overview.upcoming == [upcoming]
    assert set(overview.history) == {past, cancelled}
    events = AuditEvent.objects.order_by("pk")
    assert [(event.action, event.customer, event.actor, event.request_id) for event in events] == [
        (AuditEvent.Action.CONTACT_DETAILS_SHOWN, customer, acting.user, acting.meta.request_id),
    ]


def test_customer__overview__non_disclosure__no_contact_details_and_none_recorded_as_shown() -> None:
    customer = CustomerFactory.non_disclosure()

    overview = customer_overview(acting=acting_for(customer=customer))

    assert overview.contact is None
    assert not AuditEvent.objects.exists()


def test_customer__overview__organisation_left_the_registry__refused_and_nothing_recorded() -> None:
    organisation = OrganisationFactory()
    acting = acting_for(organisation=organisation, customer=CustomerFactory())
    deactivate(organisation)

    with pytest.raises(ActingRefusedError) as refused:
        customer_overview(acting=acting)

    assert refused.value.reason == "not_in_registry"
    assert not AuditEvent.objects.exists()


def test_customer__overview__before_a_customer_is_locked__refused() -> None:
    with pytest.raises(ActingRefusedError) as refused:
        customer_overview(acting=acting_for())

    assert refused.value.reason == "step_missing"
    assert not AuditEvent.objects.exists()


# --- selectors ------------------------------------------------------------------------------------------------------


def test_free_slots__excludes_full_slots_and_counts_only_unexpired_holds(now) -> None:
    confirmed_full = SlotFactory.full(capacity=2)
    held_full = later(confirmed_full, 1, capacity=2)
    BookingFactory.confirmed(slot=held_full)
    BookingFactory.held(slot=held_full, expires_at=now + dt.timedelta(seconds=1))
    expired_hold = later(confirmed_full, 2, capacity=2)
    BookingFactory.confirmed(slot=expired_hold)
    BookingFactory.held(slot=expired_hold, expires_at=now)
    cancelled = later(confirmed_full, 3, capacity=1)
    BookingFactory.cancelled(slot=cancelled)
    empty = later(confirmed_full, 4, capacity=1)
    later(confirmed_full, 2, language="sv")
    SlotFactory(starts_at=empty.starts_at)  # another line

    slots = free_slots(
        service_line=confirmed_full.service_line,
        language="fi",
        start=confirmed_full.starts_at,
        end=empty.ends_at,
        now=now,
    )

    assert slots == [expired_hold, cancelled, empty]
    assert [slot.taken for slot in slots] == [1, 0, 0]


@pytest.mark.parametrize("bookings_per_slot", [0, 1, 5])
def test_free_slots__uses_one_query_whatever_the_number_of_bookings(now, django_assert_num_queries, bookings_per_slot):
    first = SlotFactory(capacity=10)
    slots = [first] + [later(first, step, capacity=10) for step in range(1, 6)]
    for slot in slots:
        BookingFactory.confirmed_batch(bookings_per_slot, slot=slot)
        BookingFactory.held(slot=slot)

    customer = CustomerFactory()  # with as many bookings of other matters, none at these times
    for step in range(bookings_per_slot):
        BookingFactory.confirmed(customer=customer, slot=SlotFactory(starts_at=slots[-1].ends_at + step * HOLD))

    with django_assert_num_queries(1):
        found = free_slots(
            service_line=first.service_line,
            language="fi",
            start=first.starts_at,
            end=slots[-1].ends_at,
            now=now,
            customer_id=customer.pk,
        )

    assert [slot.taken for slot in found] == [bookings_per_slot + 1] * 6


@pytest.mark.parametrize("count", [1, 6])
def test_customer_bookings__lists_where_each_was_made_in_a_fixed_number_of_queries(
    now, django_assert_num_queries, count
) -> None:
    customer = CustomerFactory()
    made = [
        (BookingFactory.cancelled if index % 2 else BookingFactory.confirmed)(
            customer=customer, organisation=OrganisationFactory(name=f"Kunta {index}")
        )
        for index in range(count)
    ]
    BookingFactory.held(customer=customer)  # not a booking yet
    BookingFactory.confirmed()  # another customer's

    with django_assert_num_queries(1):
        rows = [
            (booking.reference, booking.organisation.name, booking.slot.service_line.name_fi)
            for booking in customer_bookings(customer=customer)
        ]

    newest_first = sorted(made, key=lambda booking: booking.slot.starts_at, reverse=True)
    assert rows == [
        (booking.reference, booking.organisation.name, booking.slot.service_line.name_fi) for booking in newest_first
    ]


def test_booking__confirm__with_another_partners_idempotency_key__refused_not_500() -> None:
    key = uuid.uuid4()
    BookingFactory.confirmed(idempotency_key=key)
    acting = acting_for(customer=CustomerFactory())
    held = booking_hold(acting=acting, slot_id=SlotFactory().pk)
    with pytest.raises(BookingError):
        booking_confirm(
            acting=acting, hold_id=held.pk, contact=ContactDetails(phone="+358401234567"), idempotency_key=key
        )
    held.refresh_from_db()
    assert held.status == Booking.Status.HELD


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (lambda: CustomerFactory(phone="+358401234567", email="a@example.org"), ("+358401234567", "a@example.org")),
        (lambda: CustomerFactory.non_disclosure(phone="+358401234567", email="a@example.org"), None),
        (lambda: CustomerFactory.not_in_register(phone="+358401234567"), None),
        (lambda: CustomerFactory(phone="", email=""), None),
    ],
)
def test_customer__register_contact__only_what_a_partner_may_see(factory, expected) -> None:
    contact = register_contact(customer=factory())
    assert (None if contact is None else (contact.phone, contact.email)) == expected
