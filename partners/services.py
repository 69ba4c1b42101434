"""Writes of the partners app: the audit trail."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from kelabooking.ratelimit import client_address
from partners.context import acting_context
from partners.models import AuditEvent, User


def audit_event_record(
    *,
    request: HttpRequest,
    action: str,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    user: User | None = None,
    customer: Any = None,
    organisation_business_id: str = "",
    organisation_name: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. The actor and the acting organisation come from the request unless given.

    `details` carries reason codes and ids only: the model refuses anything that looks like an identity code.
    """
    actor = user or (request.user if request.user.is_authenticated else None)
    context = acting_context(request)
    return AuditEvent.objects.create(
        actor=actor,
        actor_name=actor.get_full_name() if actor else "",
        actor_identity_code=(actor.identity_code or "") if actor else "",
        organisation_business_id=organisation_business_id or context.organisation_business_id,
        organisation_name=organisation_name or context.organisation_name,
        action=action,
        outcome=outcome,
        customer=customer,
        request_id=getattr(request, "request_id", ""),
        ip_address=client_address(request) or None,
        details=details or {},
    )
