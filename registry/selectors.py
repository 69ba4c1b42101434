from __future__ import annotations

from django.core.exceptions import ValidationError

from registry.models import Organisation, RegistrationRequest
from registry.validators import normalise_business_id


def organisation_may_book(*, business_id: str) -> bool:
    """The one question sign-in asks: is this Y-tunnus active in Kela's registry?"""
    try:
        business_id = normalise_business_id(business_id)
    except ValidationError:
        return False
    return Organisation.objects.active().filter(business_id=business_id).exists()


def organisation_by_business_id(*, business_id: str) -> Organisation | None:
    return Organisation.objects.filter(business_id=business_id).first()


def pending_request_exists(*, business_id: str) -> bool:
    return RegistrationRequest.objects.filter(
        business_id=business_id, status=RegistrationRequest.Status.PENDING
    ).exists()
