"""The partners app's rules: who may act for an organisation, and the audit trail."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from kelabooking import sql
from kelabooking.ratelimit import client_address
from partners.context import acting_context
from partners.models import AuditEvent, User
from partners.valtuudet import OrganisationRoles, ValtuudetError
from registry.selectors import organisation_by_business_id, organisation_may_book
from registry.validators import normalise_business_id


class Decision(enum.Enum):
    ALLOWED = "allowed"
    MANDATE_MISSING = "mandate_missing"
    NOT_IN_REGISTRY = "not_in_registry"


@dataclass(frozen=True)
class OrganisationDecision:
    decision: Decision
    business_id: str
    name: str


def organisation_decide(*, chosen: OrganisationRoles) -> OrganisationDecision:
    """May this person act for the organisation they chose? Both must hold, checked in this order:

    1. Valtuudet's answer is complete and holds one of VALTUUDET_REQUIRED_ROLES (the booking mandate);
    2. the organisation's Y-tunnus is active in Kela's registry.

    A malformed Y-tunnus from Valtuudet is Valtuudet answering nonsense: `ValtuudetError`.
    """
    try:
        business_id = normalise_business_id(chosen.business_id)
    except ValidationError:
        raise ValtuudetError("organizationRoles: the identifier is not a business ID") from None
    if not chosen.grants(settings.VALTUUDET_REQUIRED_ROLES):
        decision = Decision.MANDATE_MISSING
    elif not organisation_may_book(business_id=business_id):
        decision = Decision.NOT_IN_REGISTRY
    else:
        decision = Decision.ALLOWED
    name = chosen.name or getattr(organisation_by_business_id(business_id=business_id), "name", "")
    return OrganisationDecision(decision=decision, business_id=business_id, name=name)


def audit_event_record(
    *,
    request: HttpRequest,
    action: str,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    user: User | None = None,
    customer: Any = None,
    booking: Any = None,
    organisation_business_id: str = "",
    organisation_name: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. The actor and the acting organisation come from the request unless given.

    `details` carries reason codes and ids only: the model refuses anything that looks like an identity code.
    """
    actor = user or (request.user if request.user.is_authenticated else None)
    context = acting_context(request)
    event = AuditEvent(
        actor=actor,
        actor_name=actor.get_full_name() if actor else "",
        actor_identity_code=(actor.identity_code or "") if actor else "",
        organisation_business_id=organisation_business_id or context.organisation_business_id,
        organisation_name=organisation_name or context.organisation_name,
        action=action,
        outcome=outcome,
        customer=customer,
        booking=booking,
        request_id=getattr(request, "request_id", ""),
        ip_address=client_address(request) or None,
        details=details or {},
    )
    event.check_details()
    # Written on every partner page and in a booking's transaction: one INSERT, without the ORM's compiling.
    return sql.insert([event])[0]
