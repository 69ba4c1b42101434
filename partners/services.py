"""The partners app's rules: who may act for an organisation, and the audit trail."""

from __future__ import annotations

import dataclasses
import enum
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from partners import valtuudet
from partners.context import ActingContext, ActingRefusedError, CustomerLockedError, Step
from partners.models import AuditEvent
from partners.valtuudet import OrganisationRoles, ValtuudetError
from registry.models import Organisation
from registry.selectors import organisation_by_business_id, organisation_may_book
from registry.validators import normalise_business_id

logger = logging.getLogger(__name__)


class Decision(enum.Enum):
    """What came of an organisation choice; a refusal's value names its page (partners/refusal.html)."""

    ALLOWED = "allowed"
    MANDATE_MISSING = "mandate_missing"
    NOT_IN_REGISTRY = "not_in_registry"
    NO_ORGANISATION_CHOSEN = "no_organisation_chosen"
    VALTUUDET_UNAVAILABLE = "valtuudet_unavailable"


@dataclass(frozen=True)
class OrganisationDecision:
    decision: Decision
    business_id: str = ""
    name: str = ""
    chosen: OrganisationRoles | None = None  # Valtuudet's answer, which the refusal page names


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
    return OrganisationDecision(decision=decision, business_id=business_id, name=name, chosen=chosen)


def organisation_choose(
    *, acting: ActingContext, session_id: str, code: str, redirect_uri: str
) -> OrganisationDecision:
    """The organisation the partner chose in Valtuudet (the session `session_id` registered for them, `code` from
    its callback, "" when they chose none or cancelled), decided by `organisation_decide` and recorded in the audit
    trail: every outcome is one event. A partner who has locked a customer keeps the organisation they handle that
    customer for: `CustomerLockedError`, and nothing recorded. Choosing it into the session is the caller's.

    No transaction around it: it speaks to Valtuudet before it reads the registry, and each outcome writes one row.
    """
    if not session_id or not code:
        audit_event_record(
            acting=acting,
            action=AuditEvent.Action.ORGANISATION_CHOICE_FAILED,
            outcome=AuditEvent.Outcome.REFUSED,
            details={"reason": Decision.NO_ORGANISATION_CHOSEN.value},
        )
        return OrganisationDecision(decision=Decision.NO_ORGANISATION_CHOSEN)
    try:
        token = valtuudet.exchange_code(code=code, redirect_uri=redirect_uri)
        chosen = valtuudet.organisation_roles(session_id=session_id, access_token=token)
        outcome = organisation_decide(chosen=chosen)
    except ValtuudetError as error:
        valtuudet_failure_record(acting=acting, error=error)
        return OrganisationDecision(decision=Decision.VALTUUDET_UNAVAILABLE)
    organisation = {"organisation_business_id": outcome.business_id, "organisation_name": outcome.name}
    if outcome.decision is Decision.MANDATE_MISSING:
        audit_event_record(
            acting=acting,
            action=AuditEvent.Action.MANDATE_MISSING,
            outcome=AuditEvent.Outcome.REFUSED,
            details={"roles": list(chosen.roles)[:20], "complete": chosen.complete},
            **organisation,
        )
        return outcome
    if outcome.decision is Decision.NOT_IN_REGISTRY:
        audit_event_record(
            acting=acting,
            action=AuditEvent.Action.ORGANISATION_NOT_IN_REGISTRY,
            outcome=AuditEvent.Outcome.REFUSED,
            **organisation,
        )
        return outcome
    if acting.step >= Step.CUSTOMER_LOCKED:
        raise CustomerLockedError
    # Recorded as acting for the organisation now chosen, with its terms still to accept.
    chosen_for = dataclasses.replace(
        acting, organisation_business_id=outcome.business_id, organisation_name=outcome.name, terms_accepted_at=""
    )
    audit_event_record(acting=chosen_for, action=AuditEvent.Action.ORGANISATION_CHOSEN)
    return outcome


def valtuudet_failure_record(*, acting: ActingContext, error: ValtuudetError) -> None:
    """Valtuudet failed or answered nonsense while the partner was choosing an organisation: logged, and recorded."""
    logger.warning("Valtuudet failed: %s", error)
    audit_event_record(
        acting=acting,
        action=AuditEvent.Action.ORGANISATION_CHOICE_FAILED,
        outcome=AuditEvent.Outcome.ERROR,
        details={"reason": Decision.VALTUUDET_UNAVAILABLE.value},
    )


def acting_organisation(*, acting: ActingContext, step: Step = Step.CUSTOMER_LOCKED) -> Organisation:
    """The organisation the partner acts for, once the partner has reached `step`, if it may book at this moment: the
    registry is asked on every read or write of customer data, not only when the organisation was chosen (DESIGN.md
    §4 rule 6)."""
    if acting.step < step:
        raise ActingRefusedError("step_missing")
    organisation = (
        Organisation.objects.active().filter(business_id=acting.organisation_business_id).first()
        if acting.organisation_business_id
        else None
    )
    if organisation is None:
        raise ActingRefusedError("not_in_registry")
    return organisation


def audit_event_record(
    *,
    acting: ActingContext,
    action: str,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    customer: Any = None,
    customer_digest: str = "",
    booking: Any = None,
    organisation_business_id: str = "",
    organisation_name: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event, in the caller's transaction. The actor, the acting organisation and the request's id and
    address come from the acting context; an organisation given here (a refused choice) is recorded instead. The
    customer's keyed index comes from `customer`, or is given (`customer_digest`) for a customer there is no row of.

    `details` carries reason codes and ids only: the model refuses anything that looks like an identity code.
    """
    event = _audit_event(
        acting,
        organisation_business_id=organisation_business_id,
        organisation_name=organisation_name,
        action=action,
        outcome=outcome,
        customer=customer,
        customer_digest=customer_digest,
        booking=booking,
        details=details or {},
    )
    event.save(force_insert=True)
    return event


def _audit_event(
    acting: ActingContext, *, organisation_business_id: str = "", organisation_name: str = "", **fields: Any
) -> AuditEvent:
    """An unsaved event with the actor, the acting organisation (unless one is given) and the request's id and address
    from the acting context, and `fields` (the action, the customer, …) as given."""
    actor = acting.user
    return AuditEvent(
        actor=actor,
        actor_name=actor.get_full_name() if actor else "",
        actor_identity_code=(actor.identity_code or "") if actor else "",
        organisation_business_id=organisation_business_id or acting.organisation_business_id,
        organisation_name=organisation_name or acting.organisation_name,
        request_id=acting.meta.request_id,
        ip_address=acting.meta.ip_address,
        **fields,
    )
