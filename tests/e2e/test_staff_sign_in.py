"""FPA staff sign in to the admin in a real browser, through the sandbox's staff mode over real HTTP, as `make run`
has it: each sees exactly their groups' pages; a sign-in without MFA gets the refusal page; sign-out goes through the
provider's logout and back. axe finds nothing on the login page, the sandbox's sign-in page and the refusal page."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kelabooking.management.commands.load_demo import Command as LoadDemo
from partners.models import AuditEvent, User
from tests.e2e.conftest import AXE_TAGS, _format_violation, assert_no_console_errors
from tests.e2e.conftest import assert_accessible as assert_public_page_accessible

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _sandbox(sandbox) -> None:
    LoadDemo().handle()


def assert_admin_page_accessible(page: Page, *, refused_with: int | None = None) -> None:
    """As tests/e2e/test_admin_pages.py checks the admin's pages: axe preloads media only (Django's forms.css
    @imports a stylesheet, which axe would inline against the CSP); no rule excluded."""
    from axe_playwright_python.sync_playwright import Axe

    options = {
        "runOnly": {"type": "tag", "values": AXE_TAGS},
        "resultTypes": ["violations"],
        "preload": {"assets": ["media"]},
    }
    violations = Axe().run(page, options=options).response["violations"]
    report = "\n".join(_format_violation(violation) for violation in violations)
    assert not violations, f"axe found {len(violations)} violation(s) on {page.url}:\n{report}"
    assert_no_console_errors(page, refused_with=refused_with)


def sign_in_as(page: Page, username: str) -> None:
    page.goto("/admin/login/")
    assert_admin_page_accessible(page)
    page.locator("a[href^='/staff/login/']").click()
    page.wait_for_url("**/sandbox/staff-oidc/authorize**")
    assert_public_page_accessible(page)
    page.locator(f"input[name=person][value='{username}']").check()
    page.locator("button[value=sign-in]").click()


def model_pages(page: Page) -> set[str]:
    """The change lists the admin's index offers."""
    return set(page.locator("#content-main th[scope=row] a").evaluate_all("links => links.map(a => a.pathname)"))


def test_staff__sign_in_through_the_sandbox__sees_exactly_their_groups_pages_and_signs_out(page: Page) -> None:
    sign_in_as(page, "aino.tarkastaja")  # Audit readers
    page.wait_for_url("**/admin/")

    assert model_pages(page) == {"/admin/partners/auditevent/", "/admin/kelabooking/retentionrun/"}
    page.goto("/admin/partners/auditevent/")
    assert page.locator("#result_list").is_visible()
    assert page.request.get("/admin/bookings/booking/").status == 403  # with the page's cookies, not shown

    page.goto("/admin/")
    page.locator("#logout-form button").click()
    page.wait_for_url("**/staff/logged-out/")  # through the sandbox's end_session endpoint
    assert_admin_page_accessible(page)
    assert page.goto("/admin/").url.endswith("/admin/login/?next=/admin/")

    staff = User.objects.get(username__startswith="staff-", first_name="Aino")
    actions = list(AuditEvent.objects.filter(actor=staff).order_by("pk").values_list("action", flat=True))
    assert actions == ["staff_login", "staff_logout"]


def test_staff__in_every_group__sees_every_groups_pages(page: Page) -> None:
    sign_in_as(page, "kaisa.kaikki")
    page.wait_for_url("**/admin/")

    pages = model_pages(page)
    assert {"/admin/partners/auditevent/", "/admin/bookings/slot/", "/admin/registry/organisation/"} <= pages
    assert "/admin/partners/user/" not in pages  # no group has rights on users: superusers only


def test_staff__without_mfa__refused_with_a_page_that_says_why(page: Page) -> None:
    sign_in_as(page, "niilo.yksivaiheinen")
    page.wait_for_url("**/staff/oidc/callback/**")

    assert page.locator("h1").count() == 1
    assert page.locator("a[href='/admin/login/']").is_visible()
    assert_admin_page_accessible(page, refused_with=403)
    assert AuditEvent.objects.get().details == {"reason": "mfa_required"}
