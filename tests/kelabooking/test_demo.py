from __future__ import annotations

import pytest
from django.core.management import call_command

from kelabooking.models import Message
from partners.models import User
from registry.models import Organisation, RegistrationRequest
from registry.selectors import organisation_may_book

pytestmark = pytest.mark.django_db


def snapshot() -> tuple:
    return (
        sorted(Organisation.objects.values_list("business_id", "name", "kind", "source", "is_active")),
        sorted(RegistrationRequest.objects.values_list("business_id", "status")),
        User.objects.count(),
    )


def test_load_demo__twice__is_idempotent(capsys) -> None:
    call_command("load_demo")
    first = snapshot()
    call_command("load_demo")
    assert snapshot() == first
    assert "fpa-admin" in capsys.readouterr().out


def test_load_demo__contents__match_the_demo_story(client) -> None:
    call_command("load_demo")
    for business_id in ["0201256-6", "0211675-2", "0242746-2", "0210010-1"]:
        assert organisation_may_book(business_id=business_id)
    assert Organisation.objects.get(business_id="0201256-6").kind == Organisation.Kind.MUNICIPALITY
    assert Organisation.objects.get(business_id="0210010-1").kind == Organisation.Kind.JOINT_MUNICIPAL_AUTHORITY
    assert Organisation.objects.filter(source=Organisation.Source.REQUEST, is_active=True).exists()
    assert Organisation.objects.filter(is_active=False).exists()
    assert RegistrationRequest.objects.filter(status=RegistrationRequest.Status.PENDING).count() == 1
    assert client.login(username="fpa-admin", password="kela-demo-2026")
    assert client.get("/admin/registry/organisation/?q=0201256-6").status_code == 200


def test_load_demo__after_the_demo_request_was_decided__leaves_the_decision(admin_user) -> None:
    from registry.services import registration_request_approve

    call_command("load_demo")
    pending = RegistrationRequest.objects.get(status=RegistrationRequest.Status.PENDING)
    registration_request_approve(request_id=pending.pk, decided_by=admin_user)
    call_command("load_demo")
    assert not RegistrationRequest.objects.filter(status=RegistrationRequest.Status.PENDING).exists()
    assert Message.objects.count() == 1
