"""Demo registry for the embedded default. Idempotent: running it again changes nothing."""

from __future__ import annotations

from kelabooking import clock
from registry.models import Organisation, RegistrationRequest

DEMO_ORGANISATIONS = [
    {
        "business_id": "0201256-6",
        "name": "Helsingin kaupunki",
        "name_sv": "Helsingfors stad",
        "kind": Organisation.Kind.MUNICIPALITY,
        "source": Organisation.Source.PRH_SYNC,
    },
    {
        "business_id": "0211675-2",
        "name": "Tampereen kaupunki",
        "name_sv": "Tammerfors stad",
        "kind": Organisation.Kind.MUNICIPALITY,
        "source": Organisation.Source.PRH_SYNC,
    },
    {
        "business_id": "0242746-2",
        "name": "Joensuun kaupunki",
        "name_sv": "Joensuu stad",
        "kind": Organisation.Kind.MUNICIPALITY,
        "source": Organisation.Source.PRH_SYNC,
    },
    {
        "business_id": "0210010-1",
        "name": "Demo-kuntayhtymä",
        "name_sv": "Demo samkommun",
        "kind": Organisation.Kind.JOINT_MUNICIPAL_AUTHORITY,
        "source": Organisation.Source.PRH_SYNC,
    },
    {
        "business_id": "1000000-4",
        "name": "Tukiverkko ry",
        "kind": Organisation.Kind.OTHER,
        "source": Organisation.Source.REQUEST,
        "email": "toimisto@tukiverkko.example",
        "phone": "+358401234567",
        "note": "Added on request: helps people in debt with their benefit matters.",
    },
]

DEACTIVATED_ORGANISATION = {
    "business_id": "1000001-2",
    "name": "Lakkautettu Palvelu Oy",
    "kind": Organisation.Kind.OTHER,
    "source": Organisation.Source.REQUEST,
    "note": "Removed on its own request.",
}

PENDING_REQUEST = {
    "kind": RegistrationRequest.Kind.ADD,
    "business_id": "1000002-0",
    "organisation_name": "Monikulttuurinen neuvonta ry",
    "justification": (
        "Our advisers help immigrants with Kela matters and need to book telephone times with an interpreter."
    ),
    "contact_name": "Aino Esimerkki",
    "contact_email": "aino.esimerkki@neuvonta.example",
    "contact_phone": "+358501234567",
    "language": "fi",
}


def load_registry_demo() -> None:
    for data in DEMO_ORGANISATIONS:
        Organisation.objects.update_or_create(
            business_id=data["business_id"], defaults={**data, "is_active": True, "removed_at": None}
        )
    Organisation.objects.get_or_create(
        business_id=DEACTIVATED_ORGANISATION["business_id"],
        defaults={**DEACTIVATED_ORGANISATION, "is_active": False, "removed_at": clock.now()},
    )
    # Only when the demo request has never been made: once approved or rejected it stays decided.
    if not RegistrationRequest.objects.filter(business_id=PENDING_REQUEST["business_id"]).exists():
        RegistrationRequest.objects.create(**PENDING_REQUEST)
