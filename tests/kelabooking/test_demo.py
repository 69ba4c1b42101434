from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError

from kelabooking.checks import check_demo_admin
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


def test_load_demo__debug_off_and_no_public_demo__refused_and_nothing_loaded(settings) -> None:
    settings.DEBUG, settings.SUOMIFI_SANDBOX_PUBLIC_DEMO = False, False

    with pytest.raises(CommandError, match="SUOMIFI_SANDBOX_PUBLIC_DEMO=1"):
        call_command("load_demo")

    assert snapshot() == ([], [], 0)


def test_system_check__demo_admin_can_sign_in_outside_debug_or_public_demo__refused(settings) -> None:
    call_command("load_demo")  # a public demo site, say, whose flag is then turned off
    settings.DEBUG, settings.SUOMIFI_SANDBOX_PUBLIC_DEMO = False, False

    assert [message.id for message in check_demo_admin(databases=["default"])] == ["kelabooking.E004"]
    with pytest.raises(SystemCheckError, match="kelabooking.E004"):
        call_command("check", "--database", "default")
    assert check_demo_admin() == []  # it reads the database only when the command gives it one

    admin = User.objects.get(username="fpa-admin")
    admin.set_unusable_password()
    admin.save()
    assert check_demo_admin(databases=["default"]) == []
    admin.set_password("a-password-of-this-site-only")
    admin.is_active = False
    admin.save()
    assert check_demo_admin(databases=["default"]) == []
    admin.is_active = True
    admin.save()
    settings.SUOMIFI_SANDBOX_PUBLIC_DEMO = True
    assert check_demo_admin(databases=["default"]) == []
