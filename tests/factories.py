"""factory_boy builders, intent-named where it helps."""

from __future__ import annotations

import datetime as dt
import itertools

import factory
from django.conf import settings
from django.contrib.auth.models import Group
from stdnum.fi import hetu, ytunnus

from bookings.models import Booking, Customer, ServiceLine, Slot
from bookings.services.booking import new_reference
from kelabooking import clock
from kelabooking.identity import temporary_identity_code
from partners.context import ActingContext, RequestMeta
from partners.models import User
from registry.models import Organisation, RegistrationRequest
from registry.permissions import REGISTRY_ADMIN_GROUP

# Valid Y-tunnus values for builders: a 7-digit body and its computed check digit.
_sequence = iter(range(3_000_000, 9_999_999))


def next_business_id() -> str:
    """The next Y-tunnus that python-stdnum accepts (some 7-digit bodies have no valid check digit)."""
    while True:
        body = str(next(_sequence))
        for digit in "0123456789":
            if ytunnus.is_valid(body + digit):
                return ytunnus.format(body + digit)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct horse battery staple")

    @classmethod
    def registry_admin(cls, **kwargs) -> User:
        user = cls(is_staff=True, **kwargs)
        user.groups.add(Group.objects.get(name=REGISTRY_ADMIN_GROUP))
        return user


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation

    business_id = factory.LazyFunction(next_business_id)
    name = factory.Sequence(lambda n: f"Yhdistys {n} ry")
    kind = Organisation.Kind.OTHER
    source = Organisation.Source.MANUAL

    @classmethod
    def deactivated(cls, **kwargs) -> Organisation:
        return cls(is_active=False, removed_at=clock.now(), **kwargs)


class RegistrationRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RegistrationRequest

    kind = RegistrationRequest.Kind.ADD
    business_id = factory.LazyFunction(next_business_id)
    organisation_name = factory.Sequence(lambda n: f"Tukiyhdistys {n} ry")
    justification = "We help people with complicated benefit matters."
    contact_name = "Maija Meikäläinen"
    contact_email = "maija@example.org"
    contact_phone = ""
    language = "fi"


# --- bookings ------------------------------------------------------------------------------------------------------

_identity_codes = itertools.count()


def next_temporary_identity_code() -> str:
    """The next valid personal identity code with a temporary individual number (900–999): never a real person."""
    code = temporary_identity_code(next(_identity_codes), first_birthday=dt.date(1930, 1, 1))
    assert hetu.is_valid(code, allow_temporary=True), code
    assert not hetu.is_valid(code), code  # temporary: refused unless test identity codes are allowed
    return code


class PartnerFactory(UserFactory):
    """A partner caseworker: signed in through Suomi.fi, so keyed by a (temporary) personal identity code."""

    username = factory.Sequence(lambda n: f"partner{n}")
    identity_code = factory.LazyFunction(next_temporary_identity_code)
    first_name = "Helena"
    last_name = factory.Sequence(lambda n: f"Kumppani{n}")


class ServiceLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceLine

    name_fi = factory.Sequence(lambda n: f"Asia {n}")
    name_sv = factory.Sequence(lambda n: f"Ärende {n}")
    name_en = factory.Sequence(lambda n: f"Matter {n}")
    partner_appointment_minutes = 45

    @classmethod
    def inactive(cls, **kwargs) -> ServiceLine:
        return cls(is_active=False, **kwargs)


def _bookable_start(index: int) -> dt.datetime:
    """Tomorrow on the hour, one appointment later per slot built: past the minimum notice, well within the horizon."""
    tomorrow = clock.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    return tomorrow + dt.timedelta(minutes=45 * (index % 500))


class SlotFactory(factory.django.DjangoModelFactory):
    """A future time inside the bookable window: 45 minutes, three agents."""

    class Meta:
        model = Slot

    service_line = factory.SubFactory(ServiceLineFactory)
    language = "fi"
    starts_at = factory.Sequence(_bookable_start)
    ends_at = factory.LazyAttribute(
        lambda slot: slot.starts_at + dt.timedelta(minutes=slot.service_line.partner_appointment_minutes)
    )
    capacity = 3

    @classmethod
    def full(cls, **kwargs) -> Slot:
        """A slot whose every place is taken by a confirmed booking."""
        slot = cls(**kwargs)
        BookingFactory.confirmed_batch(slot.capacity, slot=slot)
        return slot


class CustomerFactory(factory.django.DjangoModelFactory):
    """A customer in Kela's register, with contact details."""

    class Meta:
        model = Customer

    identity_code = factory.LazyFunction(next_temporary_identity_code)
    first_name = "Aino"
    last_name = factory.Sequence(lambda n: f"Asiakas{n}")
    phone = "+358401234567"
    email = factory.Sequence(lambda n: f"asiakas{n}@example.org")
    source = Customer.Source.KELA_REGISTER

    @classmethod
    def non_disclosure(cls, **kwargs) -> Customer:
        """Turvakielto: register contact details that must never reach a partner."""
        return cls(non_disclosure=True, **kwargs)

    @classmethod
    def not_in_register(cls, **kwargs) -> Customer:
        """Someone the register does not know: the partner types the name and contact details."""
        fields = {"first_name": "", "last_name": "", "phone": "", "email": ""} | kwargs
        return cls(source=Customer.Source.ENTERED_BY_PARTNER, **fields)


class BookingFactory(factory.django.DjangoModelFactory):
    """A partner booking; `held`, `confirmed` and `cancelled` build each status consistently."""

    class Meta:
        model = Booking

    reference = factory.LazyFunction(new_reference)
    slot = factory.SubFactory(SlotFactory)
    customer = factory.SubFactory(CustomerFactory)
    status = Booking.Status.CONFIRMED
    channel = Booking.Channel.PARTNER
    organisation = factory.SubFactory(OrganisationFactory)
    booked_by = factory.SubFactory(PartnerFactory)
    contact_phone = "+358401234567"
    confirmed_at = factory.LazyFunction(clock.now)

    @classmethod
    def held(cls, *, expires_at: dt.datetime | None = None, **kwargs) -> Booking:
        """A partner's hold; expired when `expires_at` is not in the future."""
        expires_at = expires_at or clock.now() + dt.timedelta(minutes=settings.BOOKING_HOLD_MINUTES)
        fields = {"contact_phone": "", "confirmed_at": None} | kwargs
        return cls(status=Booking.Status.HELD, hold_expires_at=expires_at, **fields)

    @classmethod
    def confirmed(cls, **kwargs) -> Booking:
        return cls(status=Booking.Status.CONFIRMED, **kwargs)

    @classmethod
    def confirmed_batch(cls, size: int, **kwargs) -> list[Booking]:
        return [cls.confirmed(**kwargs) for _ in range(size)]

    @classmethod
    def cancelled(cls, **kwargs) -> Booking:
        """Cancelled by the partner who booked it, unless `cancelled_by` says otherwise."""
        fields = {
            "cancelled_at": clock.now(),
            "cancelled_by": factory.SelfAttribute("booked_by"),
            "cancellation_reason": "The customer asked to cancel.",
        } | kwargs
        return cls(status=Booking.Status.CANCELLED, **fields)


def acting_for(
    partner: User | None = None,
    *,
    organisation: Organisation | None = None,
    customer: Customer | None = None,
    request_id: str = "test-request-0001",
    ip_address: str | None = "127.0.0.1",
) -> ActingContext:
    """The acting context of a partner's session past the terms, acting for `organisation`, with `customer` locked
    when given: what the views hand the services (tests/acting.py takes the steps). Builds the partner and the
    organisation when not given."""
    from tests import acting

    return acting.acting_for(
        partner or PartnerFactory(),
        organisation=organisation or OrganisationFactory(),
        customer=customer,
        request_id=request_id,
        ip_address=ip_address,
    )


def acting_for_hold(hold: Booking) -> ActingContext:
    """The acting context in which `hold` was taken: its partner, organisation and customer."""
    return acting_for(hold.booked_by, organisation=hold.organisation, customer=hold.customer)


def acting_staff(user: User) -> ActingContext:
    """FPA staff in the admin: no organisation, no customer."""
    return ActingContext(user=user, meta=RequestMeta(request_id="test-request-0002", ip_address="127.0.0.1"))
