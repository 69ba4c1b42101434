"""The sandbox's test people and the organisations they may act for in Suomi.fi Valtuudet.

Every identity code is a temporary one (individual number 900–999, from DVV's published test persons), so no real
person can be signed in by mistake. The organisations are the demo registry's (registry/demo.py), except Naapuriapu
ry, which is deliberately not in the registry, and one person is the demo data's partner (bookings/demo.py). The
sandbox takes them from the demo data, which knows nothing of the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils.crypto import salted_hmac

from bookings.demo import DEMO_PARTNER, DEMO_PARTNER_ORGANISATION
from registry.demo import DEMO_ORGANISATIONS

BOOKING_MANDATE = "SOTE_AJANVARAUS"
GENERAL_MANDATE = "YLEINEN_ASIOINTI"

# Names given to someone signed in with a typed identity code (they are nobody in particular).
TYPED_GIVEN_NAME = "Testi"
TYPED_FAMILY_NAME = "Henkilö"


@dataclass(frozen=True)
class Organisation:
    business_id: str
    name: str
    roles: tuple[str, ...]
    complete: bool = True


@dataclass(frozen=True)
class Person:
    identity_code: str
    given_name: str
    family_name: str
    organisations: tuple[Organisation, ...] = ()

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def subject(self) -> str:
        """The OIDC `sub`: a stable pseudonym (keyed with SECRET_KEY), never the identity code itself."""
        return salted_hmac("partners.sandbox.subject", self.identity_code, algorithm="sha256").hexdigest()[:40]

    def organisation(self, business_id: str) -> Organisation | None:
        return next((org for org in self.organisations if org.business_id == business_id), None)


def _registered(business_id: str) -> tuple[str, str]:
    """(business ID, name) of an organisation in the demo registry."""
    (name,) = [data["name"] for data in DEMO_ORGANISATIONS if data["business_id"] == business_id]
    return business_id, name


HELSINKI = _registered("0201256-6")
TAMPERE = _registered("0211675-2")
JOENSUU = _registered("0242746-2")
JOINT_AUTHORITY = _registered("0210010-1")
TUKIVERKKO = _registered(DEMO_PARTNER_ORGANISATION)  # Tukiverkko ry
NOT_IN_REGISTRY = ("2718282-8", "Naapuriapu ry")


def _org(business_id_and_name: tuple[str, str], *roles: str, complete: bool = True) -> Organisation:
    business_id, name = business_id_and_name
    return Organisation(business_id=business_id, name=name, roles=roles, complete=complete)


PEOPLE: tuple[Person, ...] = (
    # The everyday case: the booking mandate for one municipality.
    Person("010594Y9021", "Helena", "Virtanen", (_org(HELSINKI, BOOKING_MANDATE),)),
    # The booking mandate for two organisations: the organisation choice matters. He is the demo data's partner:
    # signing in as him finds the user who made the demo's partner bookings for Tukiverkko ry.
    Person(
        DEMO_PARTNER["identity_code"],
        DEMO_PARTNER["first_name"],
        DEMO_PARTNER["last_name"],
        (_org(TAMPERE, BOOKING_MANDATE), _org(TUKIVERKKO, BOOKING_MANDATE)),
    ),
    # The mandate, but the organisation is not in Kela's registry.
    Person("030694W9024", "Outi", "Järvinen", (_org(NOT_IN_REGISTRY, BOOKING_MANDATE),)),
    # A mandate of another kind only.
    Person("040594V9030", "Yrjö", "Korhonen", (_org(HELSINKI, GENERAL_MANDATE),)),
    # The mandate through a joint municipal authority.
    Person("050594U902L", "Kaisa", "Nieminen", (_org(JOINT_AUTHORITY, BOOKING_MANDATE),)),
    # The mandate, but Valtuudet reports the organisation's data as incomplete.
    Person("050594U903M", "Mikko", "Lahtinen", (_org(JOENSUU, BOOKING_MANDATE, complete=False),)),
    # No mandates at all.
    Person("070770-905D", "Matti", "Meikäläinen"),
)


def person_for(identity_code: str) -> Person:
    """The listed test person with this identity code, or a person with a typed code.

    A typed code has no organisations, unless the setting SUOMIFI_SANDBOX_TYPED_MANDATES names some (business ID,
    name) pairs: then it holds the booking mandate for each. The HTTP benchmark uses that to sign in as many
    different partners (bench/settings.py); nothing else sets it.
    """
    for person in PEOPLE:
        if person.identity_code == identity_code:
            return person
    organisations = tuple(_org(pair, BOOKING_MANDATE) for pair in settings.SUOMIFI_SANDBOX_TYPED_MANDATES)
    return Person(identity_code, TYPED_GIVEN_NAME, TYPED_FAMILY_NAME, organisations)
