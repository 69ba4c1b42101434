"""What an FPA registry admin does in Django admin, through the admin's own pages."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.urls import reverse

from kelabooking.models import Message
from registry.models import Organisation, RegistrationRequest
from registry.permissions import REGISTRY_ADMIN_GROUP
from tests.factories import OrganisationFactory, RegistrationRequestFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:registry_organisation_changelist"
REQUESTS = "admin:registry_registrationrequest_changelist"


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory.registry_admin())
    return client


def test_registry_admin_group__has_exactly_the_registry_permissions() -> None:
    group = Group.objects.get(name=REGISTRY_ADMIN_GROUP)
    codenames = set(group.permissions.values_list("content_type__app_label", "codename"))
    assert codenames == {
        ("registry", "view_organisation"),
        ("registry", "add_organisation"),
        ("registry", "change_organisation"),
        ("registry", "view_registrationrequest"),
        ("registry", "change_registrationrequest"),
        ("registry", "view_syncrun"),
        ("kelabooking", "view_message"),
    }


def test_organisation_admin__search_by_business_id__finds_helsinki_however_typed(admin_client) -> None:
    OrganisationFactory(business_id="0201256-6", name="Helsingin kaupunki")
    OrganisationFactory(name="Tampereen kaupunki")
    for typed in ["0201256-6", "02012566", "201256-6"]:
        response = admin_client.get(reverse(CHANGELIST), {"q": typed})
        assert response.status_code == 200
        assert response.context["cl"].result_count == 1, typed
        assert "Helsingin kaupunki" in response.content.decode()


def test_organisation_admin__deactivate_and_reactivate_actions(admin_client) -> None:
    organisation = OrganisationFactory()
    admin_client.post(reverse(CHANGELIST), {"action": "deactivate", "_selected_action": [organisation.pk]})
    organisation.refresh_from_db()
    assert organisation.is_active is False
    admin_client.post(reverse(CHANGELIST), {"action": "reactivate", "_selected_action": [organisation.pk]})
    organisation.refresh_from_db()
    assert organisation.is_active is True


def test_organisation_admin__delete__is_not_possible(admin_client) -> None:
    organisation = OrganisationFactory()
    response = admin_client.post(reverse("admin:registry_organisation_delete", args=[organisation.pk]), {"post": "yes"})
    assert response.status_code == 403
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "delete_selected", "_selected_action": [organisation.pk], "post": "yes"}
    )
    assert Organisation.objects.filter(pk=organisation.pk).exists()


def test_organisation_admin__csv_export__follows_the_filters(admin_client) -> None:
    OrganisationFactory(name="Aktiivinen ry")
    OrganisationFactory.deactivated(name="=HYPERLINK(1) Lakkautettu ry")
    response = admin_client.get(reverse("admin:registry_organisation_export"), {"is_active__exact": "0"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(rows) == 2  # header and the one deactivated organisation
    assert rows[1][1] == "'=HYPERLINK(1) Lakkautettu ry"  # a formula is neutralised
    changelist = admin_client.get(reverse(CHANGELIST), {"is_active__exact": "0"}).content.decode()
    assert reverse("admin:registry_organisation_export") + "?is_active__exact=0" in changelist


def test_organisation_admin__add_with_bad_business_id__shows_error_and_saves_nothing(admin_client) -> None:
    response = admin_client.post(
        reverse("admin:registry_organisation_add"), {"business_id": "0201256-7", "name": "Virhe", "kind": "other"}
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["business_id"]
    assert not Organisation.objects.exists()


def test_registration_request_admin__approve__asks_for_note_then_decides_and_messages(
    admin_client, django_capture_on_commit_callbacks
) -> None:
    registration = RegistrationRequestFactory(language="en")
    selected = {"action": "approve", "_selected_action": [registration.pk]}
    response = admin_client.post(reverse(REQUESTS), selected)
    assert response.status_code == 200  # the intermediate page
    assert 'name="note"' in response.content.decode()
    registration.refresh_from_db()
    assert registration.status == RegistrationRequest.Status.PENDING

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse(REQUESTS), {**selected, "confirm": "1", "note": "Welcome aboard."})
    assert response.status_code == 302
    registration.refresh_from_db()
    assert registration.status == RegistrationRequest.Status.APPROVED
    assert Organisation.objects.get(business_id=registration.business_id).is_active
    assert [sent.to for sent in mail.outbox] == [[registration.contact_email]]
    assert "Welcome aboard." in mail.outbox[0].body
    messages = admin_client.get(reverse("admin:kelabooking_message_changelist"))
    assert registration.contact_email in messages.content.decode()


def test_registration_request_admin__reject_without_note__asks_again(admin_client) -> None:
    registration = RegistrationRequestFactory()
    response = admin_client.post(
        reverse(REQUESTS), {"action": "reject", "_selected_action": [registration.pk], "confirm": "1", "note": ""}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["note"]
    registration.refresh_from_db()
    assert registration.status == RegistrationRequest.Status.PENDING
    assert not Message.objects.exists()


def test_registration_request_admin__reject_with_note__rejects(admin_client) -> None:
    registration = RegistrationRequestFactory()
    admin_client.post(
        reverse(REQUESTS),
        {"action": "reject", "_selected_action": [registration.pk], "confirm": "1", "note": "No justification."},
    )
    registration.refresh_from_db()
    assert registration.status == RegistrationRequest.Status.REJECTED
    assert registration.decision_note == "No justification."
    assert not Organisation.objects.filter(business_id=registration.business_id).exists()


def test_registry_admin__staff_without_the_group__cannot_see_the_registry(client) -> None:
    client.force_login(UserFactory(is_staff=True))
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(reverse(REQUESTS)).status_code == 403
    assert client.get(reverse("admin:registry_organisation_export")).status_code == 403


def test_message_admin__resend_action__queues_failed_message_again(admin_client, django_capture_on_commit_callbacks):
    from tests.kelabooking.test_outbox import enqueue

    message = enqueue()
    Message.objects.filter(pk=message.pk).update(
        status=Message.Status.FAILED, attempts=8, last_error="550 no such user"
    )
    admin = UserFactory(is_staff=True, is_superuser=True)
    admin_client.force_login(admin)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:kelabooking_message_changelist"), {"action": "resend", "_selected_action": [message.pk]}
        )
    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert len(mail.outbox) == 1
