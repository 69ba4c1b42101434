"""factory_boy builders, intent-named where it helps."""

from __future__ import annotations

import factory
from django.contrib.auth.models import Group
from stdnum.fi import ytunnus

from kelabooking import clock
from kelabooking.permissions import REGISTRY_ADMIN_GROUP
from partners.models import User
from registry.models import Organisation, RegistrationRequest

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
