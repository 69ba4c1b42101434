"""A partner's way in, in a real browser against the live server and the Suomi.fi sandbox over real HTTP:
identification, the organisation choice, the terms, and logout — and each refusal on the way."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kelabooking.management.commands.load_demo import Command as LoadDemo
from partners.models import AuditEvent, User
from tests.e2e.conftest import assert_accessible

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HELENA = "010594Y9021"  # booking mandate for Helsinki
YRJO = "040594V9030"  # a mandate of another kind only
OUTI = "030694W9024"  # an organisation that is not in Kela's registry


@pytest.fixture(autouse=True)
def _sandbox(sandbox) -> None:
    LoadDemo().handle()


def identify(page: Page, language: str, identity_code: str) -> None:
    page.goto(f"/{language}/")
    page.locator(f"a[href='/{language}/login/']").click()
    page.wait_for_url("**/sandbox/oidc/authorize**")
    assert_accessible(page)
    page.locator(f"input[name=person][value='{identity_code}']").check()
    page.locator("button[value=identify]").click()
    page.wait_for_url(f"**/{language}/work/")


def choose_organisation(page: Page, business_id: str | None = None) -> None:
    page.locator("form[action$='/work/organisation/'] button").click()
    page.wait_for_url("**/sandbox/valtuudet/oauth/authorize**")
    assert_accessible(page)
    radio = page.locator("input[name=organisation]" + (f"[value='{business_id}']" if business_id else ""))
    radio.first.check()
    page.locator("button[value=choose]").click()


@pytest.mark.parametrize("language", ["fi", "sv"])
def test_partner__login_choose_organisation_accept_terms_logout(page: Page, language: str) -> None:
    identify(page, language, HELENA)
    assert page.locator("html").get_attribute("lang") == language
    assert "Helena Virtanen" in page.locator(".acting-bar").inner_text()
    assert_accessible(page)

    choose_organisation(page, "0201256-6")
    page.wait_for_url(f"**/{language}/terms/")
    assert "0201256-6" in page.locator(".acting-bar").inner_text()
    assert_accessible(page)

    page.locator("form.form button[type=submit]").click()  # without the checkbox: refused, with an error
    assert page.locator(".error-summary").is_visible()
    assert page.locator("#id_consent").get_attribute("aria-invalid") == "true"
    assert_accessible(page)
    page.locator("#id_consent").check()
    page.locator("form.form button[type=submit]").click()
    page.wait_for_url(f"**/{language}/customer/")
    assert_accessible(page)

    page.locator("form[action$='/logout/'] button").click()
    page.wait_for_url(f"**/{language}/logged-out/")  # through the sandbox's end_session endpoint
    assert_accessible(page)
    page.goto(f"/{language}/terms/")  # logged out: the terms send to login, which goes straight to Suomi.fi
    assert "/sandbox/oidc/authorize" in page.url

    partner = User.objects.with_identity_code(HELENA).get()
    actions = list(AuditEvent.objects.filter(actor=partner).order_by("pk").values_list("action", flat=True))
    assert actions == ["login", "organisation_chosen", "terms_accepted", "logout"]


def test_partner__mandate_of_another_kind__sees_how_to_get_it(page: Page) -> None:
    identify(page, "fi", YRJO)
    choose_organisation(page)
    page.wait_for_url("**/valtuudet/callback/**")
    assert page.locator("a[href='https://www.suomi.fi/valtuudet']").count() == 1
    assert_accessible(page, refused_with=403)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.MANDATE_MISSING).count() == 1


def test_partner__organisation_not_in_registry__is_sent_to_the_request_page(page: Page) -> None:
    identify(page, "sv", OUTI)
    choose_organisation(page)
    page.wait_for_url("**/valtuudet/callback/**")
    assert page.locator("a[href='/sv/registry/request/']").count() >= 1
    assert_accessible(page, refused_with=403)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ORGANISATION_NOT_IN_REGISTRY).count() == 1


def test_partner__cancel_at_identification__sees_a_way_to_try_again(page: Page) -> None:
    page.goto("/fi/")
    page.locator("a[href='/fi/login/']").click()
    page.wait_for_url("**/sandbox/oidc/authorize**")
    page.locator("button[value=cancel]").click()
    page.wait_for_url("**/oidc/callback/**")
    assert page.locator("a[href='/fi/login/']").count() >= 1
    assert_accessible(page, refused_with=400)
    assert AuditEvent.objects.get().details["reason"] == "cancelled"


def test_partner__terms_reached_too_early__redirected_to_login(page: Page) -> None:
    page.goto("/fi/terms/")
    assert "/sandbox/oidc/authorize" in page.url  # the login view went straight on to identification
