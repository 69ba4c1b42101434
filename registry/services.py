"""Writes to the registry. Each function enforces one rule and is the only place that rule lives."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from kelabooking import clock
from kelabooking.models import Message
from kelabooking.services import message_enqueue
from registry.models import Organisation, RegistrationRequest
from registry.selectors import organisation_by_business_id, pending_request_exists


class RegistryError(Exception):
    """A registry rule refused the change; `message` is translated and safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@transaction.atomic
def organisation_deactivate(*, organisation: Organisation, by_sync: bool = False) -> bool:
    """Take an organisation out of use (never delete: bookings refer to it). Returns whether it changed.

    When FPA staff deactivate an organisation that came from the PRH sync, Kela takes it over (source `manual`):
    otherwise the next nightly sync, which still finds the municipality in PRH, would reactivate it.
    """
    changes: dict[str, object] = {"is_active": False, "removed_at": clock.now(), "updated_at": clock.now()}
    if not by_sync and organisation.source == Organisation.Source.PRH_SYNC:
        changes["source"] = Organisation.Source.MANUAL
    return bool(Organisation.objects.filter(pk=organisation.pk, is_active=True).update(**changes))


@transaction.atomic
def organisation_reactivate(*, organisation: Organisation) -> bool:
    return bool(
        Organisation.objects.filter(pk=organisation.pk, is_active=False).update(
            is_active=True, removed_at=None, updated_at=clock.now()
        )
    )


@transaction.atomic
def registration_request_submit(
    *,
    kind: str,
    business_id: str,
    organisation_name: str,
    justification: str,
    contact_name: str,
    contact_email: str,
    contact_phone: str,
    language: str,
) -> RegistrationRequest:
    """Record a public request to add or remove an organisation.

    One pending request per Y-tunnus (the database enforces it too); an *add* for an organisation already active
    and a *remove* for one not in use are refused, because neither would change anything.
    """
    if pending_request_exists(business_id=business_id):
        raise RegistryError(
            _("A request for this business ID is already being processed. You will get a message when it is handled.")
        )
    organisation = organisation_by_business_id(business_id=business_id)
    if kind == RegistrationRequest.Kind.ADD and organisation is not None and organisation.is_active:
        raise RegistryError(_("This organisation is already in Kela's registry. Its staff can book times."))
    if kind == RegistrationRequest.Kind.REMOVE and (organisation is None or not organisation.is_active):
        raise RegistryError(_("This organisation is not in Kela's registry, so there is nothing to remove."))
    try:
        with transaction.atomic():
            return RegistrationRequest.objects.create(
                kind=kind,
                business_id=business_id,
                organisation_name=organisation_name,
                justification=justification,
                contact_name=contact_name,
                contact_email=contact_email,
                contact_phone=contact_phone,
                language=language,
                organisation=organisation,
            )
    except IntegrityError as error:  # a simultaneous request for the same Y-tunnus won the race
        raise RegistryError(
            _("A request for this business ID is already being processed. You will get a message when it is handled.")
        ) from error


def _lock_pending(request_id: int) -> RegistrationRequest:
    registration = RegistrationRequest.objects.select_for_update().get(pk=request_id)
    if registration.status != RegistrationRequest.Status.PENDING:
        raise RegistryError(_("This request has already been decided."))
    return registration


@transaction.atomic
def registration_request_approve(
    *, request_id: int, decided_by: AbstractBaseUser, note: str = ""
) -> RegistrationRequest:
    """Approve a request: an *add* creates or reactivates the organisation, a *remove* deactivates it.

    The contact person is told through the outbox, in the language the request was made in.
    """
    registration = _lock_pending(request_id)
    organisation = Organisation.objects.select_for_update().filter(business_id=registration.business_id).first()
    if registration.kind == RegistrationRequest.Kind.ADD:
        if organisation is None:
            organisation = Organisation.objects.create(
                business_id=registration.business_id,
                name=registration.organisation_name,
                kind=Organisation.Kind.OTHER,
                source=Organisation.Source.REQUEST,
                email=registration.contact_email,
                phone=registration.contact_phone,
            )
        else:
            organisation_reactivate(organisation=organisation)
    elif organisation is not None:
        organisation_deactivate(organisation=organisation)
    return _decide(registration, RegistrationRequest.Status.APPROVED, decided_by, note, organisation)


@transaction.atomic
def registration_request_reject(*, request_id: int, decided_by: AbstractBaseUser, note: str) -> RegistrationRequest:
    """Reject a request; the registry does not change and the contact person is told why."""
    registration = _lock_pending(request_id)
    if not note.strip():
        raise RegistryError(_("Write a decision note: it tells the contact person why the request was rejected."))
    return _decide(registration, RegistrationRequest.Status.REJECTED, decided_by, note, registration.organisation)


def _decide(
    registration: RegistrationRequest,
    status: str,
    decided_by: AbstractBaseUser,
    note: str,
    organisation: Organisation | None,
) -> RegistrationRequest:
    registration.status = status
    registration.decided_at = clock.now()
    registration.decided_by = decided_by
    registration.decision_note = note.strip()
    registration.organisation = organisation
    registration.save(update_fields=["status", "decided_at", "decided_by", "decision_note", "organisation"])
    _enqueue_decision_message(registration)
    return registration


def _enqueue_decision_message(registration: RegistrationRequest) -> None:
    """E-mail the contact person when an address was given, otherwise send an SMS."""
    if registration.contact_email:
        channel, recipient = Message.Channel.EMAIL, registration.contact_email
    else:
        channel, recipient = Message.Channel.SMS, registration.contact_phone
    context = {"registration": registration, "approved": registration.status == RegistrationRequest.Status.APPROVED}
    with translation.override(registration.language):
        subject = render_to_string("registry/messages/decision_subject.txt", context).strip()
        body = render_to_string(f"registry/messages/decision_{channel}.txt", context).strip()
    message_enqueue(
        key=f"registration_request:{registration.pk}:{RegistrationRequest.MessageKind.DECISION}:{channel}",
        kind=RegistrationRequest.MessageKind.DECISION,
        channel=channel,
        recipient=recipient,
        language=registration.language,
        subject=subject,
        body=body,
    )
