from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from kelabooking.models import Message
from registry.models import Organisation, RegistrationRequest
from registry.selectors import organisation_may_book
from registry.services import (
    RegistryError,
    organisation_deactivate,
    organisation_reactivate,
    registration_request_approve,
    registration_request_reject,
    registration_request_submit,
)
from tests.factories import OrganisationFactory, RegistrationRequestFactory, UserFactory, next_business_id

pytestmark = pytest.mark.django_db


def submit(**overrides) -> RegistrationRequest:
    fields = {
        "kind": RegistrationRequest.Kind.ADD,
        "business_id": next_business_id(),
        "organisation_name": "Tukiyhdistys ry",
        "justification": "Autamme ihmisiä Kela-asioissa.",
        "contact_name": "Maija Meikäläinen",
        "contact_email": "maija@example.org",
        "contact_phone": "",
        "language": "fi",
        **overrides,
    }
    return registration_request_submit(**fields)


def test_organisation__may_book__only_when_active() -> None:
    active = OrganisationFactory(business_id="0201256-6")
    inactive = OrganisationFactory.deactivated()
    assert organisation_may_book(business_id=active.business_id) is True
    assert organisation_may_book(business_id="02012566") is True  # as Valtuudet might spell it
    assert organisation_may_book(business_id=inactive.business_id) is False
    assert organisation_may_book(business_id=next_business_id()) is False
    assert organisation_may_book(business_id="not a business id") is False


def test_organisation__deactivate_then_reactivate__keeps_removed_at_consistent() -> None:
    organisation = OrganisationFactory()
    assert organisation_deactivate(organisation=organisation) is True
    organisation.refresh_from_db()
    assert (organisation.is_active, organisation.removed_at is not None) == (False, True)
    assert organisation_deactivate(organisation=organisation) is False
    assert organisation_reactivate(organisation=organisation) is True
    organisation.refresh_from_db()
    assert (organisation.is_active, organisation.removed_at) == (True, None)


def test_organisation__constraint__inactive_without_removed_at_is_refused() -> None:
    organisation = OrganisationFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Organisation.objects.filter(pk=organisation.pk).update(is_active=False)


def test_organisation__constraint__malformed_business_id_is_refused() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Organisation.objects.create(business_id="02012566", name="Ei muotoiltu")


def test_registration_request__submit__records_pending_request() -> None:
    registration = submit(language="sv")
    assert registration.status == RegistrationRequest.Status.PENDING
    assert registration.language == "sv"
    assert registration.decided_at is None


def test_registration_request__submit_second_pending_for_same_business_id__is_refused() -> None:
    first = submit()
    with pytest.raises(RegistryError, match="already being processed"):
        submit(business_id=first.business_id, organisation_name="Toinen nimi")
    assert RegistrationRequest.objects.count() == 1


def test_registration_request__constraint__two_pending_for_same_business_id_refused_by_database() -> None:
    first = RegistrationRequestFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        RegistrationRequestFactory(business_id=first.business_id)


def test_registration_request__submit_add_for_active_organisation__is_refused() -> None:
    organisation = OrganisationFactory()
    with pytest.raises(RegistryError, match="already in Kela's registry"):
        submit(business_id=organisation.business_id)


def test_registration_request__submit_remove_for_unknown_organisation__is_refused() -> None:
    with pytest.raises(RegistryError, match="not in Kela's registry"):
        submit(kind=RegistrationRequest.Kind.REMOVE)


def test_registration_request__submit_after_decision__is_allowed_again() -> None:
    admin = UserFactory(is_staff=True)
    first = submit()
    registration_request_reject(request_id=first.pk, decided_by=admin, note="Perustelut puuttuvat.")
    second = submit(business_id=first.business_id)
    assert second.pk != first.pk


def test_registration_request__approve_add__creates_active_organisation_from_request() -> None:
    admin = UserFactory(is_staff=True)
    registration = submit(contact_phone="+358401234567")
    decided = registration_request_approve(request_id=registration.pk, decided_by=admin, note="Tervetuloa.")
    organisation = Organisation.objects.get(business_id=registration.business_id)
    assert (organisation.name, organisation.source, organisation.kind, organisation.is_active) == (
        "Tukiyhdistys ry",
        Organisation.Source.REQUEST,
        Organisation.Kind.OTHER,
        True,
    )
    assert (organisation.email, organisation.phone) == ("maija@example.org", "+358401234567")
    assert decided.status == RegistrationRequest.Status.APPROVED
    assert (decided.decided_by, decided.decision_note, decided.organisation) == (admin, "Tervetuloa.", organisation)
    assert organisation_may_book(business_id=registration.business_id) is True


def test_registration_request__approve_add_for_deactivated_organisation__reactivates_it() -> None:
    organisation = OrganisationFactory.deactivated()
    registration = submit(business_id=organisation.business_id)
    registration_request_approve(request_id=registration.pk, decided_by=UserFactory(is_staff=True))
    organisation.refresh_from_db()
    assert (organisation.is_active, organisation.removed_at) == (True, None)
    assert Organisation.objects.filter(business_id=organisation.business_id).count() == 1


def test_registration_request__approve_remove__deactivates_but_keeps_organisation() -> None:
    organisation = OrganisationFactory()
    registration = submit(kind=RegistrationRequest.Kind.REMOVE, business_id=organisation.business_id)
    registration_request_approve(request_id=registration.pk, decided_by=UserFactory(is_staff=True))
    organisation.refresh_from_db()
    assert organisation.is_active is False
    assert organisation.removed_at is not None
    assert organisation_may_book(business_id=organisation.business_id) is False


def test_registration_request__reject_without_note__is_refused_and_nothing_changes() -> None:
    registration = submit()
    with pytest.raises(RegistryError, match="decision note"):
        registration_request_reject(request_id=registration.pk, decided_by=UserFactory(is_staff=True), note="  ")
    registration.refresh_from_db()
    assert registration.status == RegistrationRequest.Status.PENDING
    assert not Message.objects.exists()


def test_registration_request__reject__leaves_registry_unchanged() -> None:
    registration = submit()
    registration_request_reject(
        request_id=registration.pk, decided_by=UserFactory(is_staff=True), note="Ei perusteita."
    )
    registration.refresh_from_db()
    assert registration.status == RegistrationRequest.Status.REJECTED
    assert not Organisation.objects.filter(business_id=registration.business_id).exists()


def test_registration_request__decide_twice__is_refused() -> None:
    admin = UserFactory(is_staff=True)
    registration = submit()
    registration_request_approve(request_id=registration.pk, decided_by=admin)
    with pytest.raises(RegistryError, match="already been decided"):
        registration_request_reject(request_id=registration.pk, decided_by=admin, note="Myöhässä.")
    assert Message.objects.count() == 1


@pytest.mark.parametrize(
    ("language", "approved_subject"),
    [
        ("fi", "Pyyntösi Kelalle on hyväksytty"),
        ("sv", "Din begäran till FPA har godkänts"),
        ("en", "Your request to Kela has been approved"),
    ],
)
def test_registration_request__approve__queues_email_in_request_language(language: str, approved_subject: str) -> None:
    registration = submit(language=language)
    registration_request_approve(request_id=registration.pk, decided_by=UserFactory(is_staff=True), note="OK")
    message = Message.objects.get()
    assert (message.kind, message.channel, message.recipient, message.language) == (
        RegistrationRequest.MessageKind.DECISION,
        Message.Channel.EMAIL,
        "maija@example.org",
        language,
    )
    assert message.subject == approved_subject
    assert registration.business_id in message.body
    assert "OK" in message.body


def test_registration_request__decision_without_email__goes_by_sms() -> None:
    registration = submit(contact_email="", contact_phone="+358401234567")
    registration_request_reject(request_id=registration.pk, decided_by=UserFactory(is_staff=True), note="Ei.")
    message = Message.objects.get()
    assert (message.channel, message.recipient) == (Message.Channel.SMS, "+358401234567")
    assert "hylätty" in message.body


def test_registration_request__decision__reaches_a_real_smtp_server(
    smtp_sink, django_capture_on_commit_callbacks
) -> None:
    registration = submit(language="sv", contact_email="kontakt@forening.example")
    with django_capture_on_commit_callbacks(execute=True):
        registration_request_approve(
            request_id=registration.pk, decided_by=UserFactory(is_staff=True), note="Välkommen!"
        )
    assert len(smtp_sink.messages) == 1
    received = smtp_sink.messages[0]
    assert received["X-Envelope-To"] == "kontakt@forening.example"
    assert received["Subject"] == "Din begäran till FPA har godkänts"
    body = received.get_body(preferencelist=("plain",)).get_content()
    assert registration.business_id in body
    assert "Välkommen!" in body
    assert Message.objects.get().status == Message.Status.SENT
