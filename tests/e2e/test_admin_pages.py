"""The admin pages this project adds or customises, in a real browser against the live server: axe finds nothing on
them, they run without console errors or CSP violations, and no change list is cut off at 1280 × 800.

Signed in as a superuser, who sees every list and every kind of message; the admin in Finnish, as the browser asks.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest
from django.apps import apps
from django.contrib import admin

from bookings.models import Booking, ClosedDay, Customer, ServiceLine
from kelabooking import clock
from kelabooking.management.commands.load_demo import Command as LoadDemo
from kelabooking.models import Message
from partners.models import AuditEvent, Notice, User
from partners.services import audit_event_record
from registry.models import Organisation, SyncRun
from tests.e2e.conftest import AXE_TAGS, _format_violation, assert_no_console_errors
from tests.factories import OrganisationFactory, acting_for

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CUSTOMER_CODE = "150385-9013"  # the demo's ordinary customer, Liisa Tavallinen
LONG_ERROR = (
    "SMTPRecipientsRefused: {'liisa.tavallinen@example.com': (550, b'5.1.1 The email account that you tried to "
    "reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary "
    "spaces.')}"
)

ADMIN_USERNAME = "e2e-superuser"
ADMIN_PASSWORD = "e2e-admin-password-0123"  # noqa: S105 - a test user in the test database only
PROJECT_APPS = {"bookings", "partners", "registry", "kelabooking"}
# Every change list of the project's own models (Django's Group is not ours), a model added later included.
CHANGE_LISTS = sorted(
    f"{model._meta.app_label}/{model._meta.model_name}"
    for model in apps.get_models()
    if admin.site.is_registered(model) and model._meta.app_label in PROJECT_APPS
)
# The lists admin_data fills (with the demo data): each must show rows, or its width would say little.
FILLED = {
    "bookings/serviceline",
    "bookings/openingrule",
    "bookings/closedday",
    "bookings/slot",
    "bookings/customer",
    "bookings/booking",
    "partners/user",
    "partners/auditevent",
    "partners/notice",
    "registry/organisation",
    "registry/registrationrequest",
    "registry/syncrun",
    "kelabooking/message",
}
VIEWPORT_1280 = {"width": 1280, "height": 800}

# How wide the results are against the room they have. The results sit in `.results`, which scrolls sideways when
# the table is too wide (the columns past its right edge are then cut off until scrolled to); and neither may reach
# past the change list itself or the window.
_WIDTHS = """() => {
  const table = document.querySelector('#result_list');
  if (!table) return null;  // an empty list has no table
  const results = table.closest('.results');
  const changelist = document.querySelector('#changelist');
  return {
    table: Math.ceil(table.getBoundingClientRect().right),
    tableScroll: table.scrollWidth,
    resultsScroll: results.scrollWidth,
    resultsClient: results.clientWidth,
    changelist: Math.ceil(changelist.getBoundingClientRect().right),
    window: document.documentElement.clientWidth,
    pageScroll: document.documentElement.scrollWidth,
  };
}"""


@pytest.fixture(autouse=True)
def admin_data() -> dict:
    """The demo data, and what the demo has none of: a notice, audit events, messages, a closed day, a registry sync
    run, and an organisation with a long name."""
    LoadDemo().handle()
    now = clock.now()
    today = clock.localnow().date()
    ClosedDay.objects.create(
        date_from=today + dt.timedelta(days=30),
        date_until=today + dt.timedelta(days=31),
        reason="Henkilöstön koulutuspäivät ja puhelinjärjestelmän päivitys",
    )
    SyncRun.objects.create(finished_at=now, status=SyncRun.Status.SUCCEEDED, fetched=1234)
    User.objects.create_superuser(ADMIN_USERNAME, password=ADMIN_PASSWORD, first_name="Eetu", last_name="Ylläpitäjä")
    notice = Notice.objects.create(
        level=Notice.Level.WARNING,
        text_fi="Palvelussa on huoltokatko lauantaina klo 8–12.",
        text_sv="Tjänsten har ett underhållsavbrott på lördag kl. 8–12.",
        text_en="The service has a maintenance break on Saturday from 8 to 12.",
        valid_from=now,
        valid_until=now + dt.timedelta(days=3),
    )
    customer = Customer.objects.filter(first_name="Liisa", last_name="Tavallinen").get()
    booking = Booking.objects.filter(status=Booking.Status.CONFIRMED).select_related("organisation").first()
    organisation = booking.organisation if booking and booking.organisation else Organisation.objects.first()
    partner = User.objects.filter(is_staff=False).exclude(first_name="").first()
    acting = acting_for(partner, organisation=organisation, customer=customer)
    for action in (AuditEvent.Action.CUSTOMER_OPENED, AuditEvent.Action.CONTACT_DETAILS_SHOWN):
        audit_event_record(acting=acting, action=action, customer=customer)
    OrganisationFactory(
        name="Pohjois-Pohjanmaan maahanmuuttajien neuvonta- ja tukipalveluiden kuntayhtymä (liikelaitos)",
        name_sv="Norra Österbottens samkommun för rådgivnings- och stödtjänster för invandrare (affärsverk)",
    )
    for number, (channel, recipient) in enumerate(
        [
            (Message.Channel.EMAIL, "liisa.tavallinen.pitka-osoite@asiakas.esimerkkikunta.example.com"),
            (Message.Channel.SMS, "+358401110001"),
        ]
    ):
        Message.objects.create(
            key=f"e2e-admin-{number}",
            kind=Booking.MessageKind.CONFIRMATION,
            channel=channel,
            recipient=recipient,
            language="fi",
            subject="Puhelinaika Kelaan",
            body="Varaus vahvistettu.",
            status=Message.Status.FAILED,
            attempts=5,
            last_error=LONG_ERROR,
            next_attempt_at=now,
        )
    return {"notice": notice, "line": ServiceLine.objects.filter(opening_rules__isnull=False).first()}


def log_in(page: Page) -> None:
    page.goto("/admin/login/")
    assert_accessible(page)
    page.locator("#id_username").fill(ADMIN_USERNAME)
    page.locator("#id_password").fill(ADMIN_PASSWORD)
    page.locator("#login-form [type=submit]").click()
    page.wait_for_url("**/admin/")


def assert_accessible(page: Page) -> None:
    """tests/e2e/conftest.py's assert_accessible, every rule and tag the same, with one option more: axe preloads the
    page's media only, not its stylesheets (`preload: {"assets": ["media"]}`; axe's default is both).

    Why: to read a stylesheet that @imports another (Django's forms.css imports widgets.css), axe fetches it and puts
    its text into a <style> element, which the Content-Security-Policy (style-src 'self', no inline styles) rightly
    blocks; the check for console errors then fails on axe's own CSP violation, not on anything of the page. The
    preloaded stylesheets serve only axe's experimental css-orientation-lock rule, which these tags do not run.
    No rule is excluded.
    """
    from axe_playwright_python.sync_playwright import Axe

    options = {
        "runOnly": {"type": "tag", "values": AXE_TAGS},
        "resultTypes": ["violations"],
        "preload": {"assets": ["media"]},
    }
    violations = Axe().run(page, options=options).response["violations"]
    report = "\n".join(_format_violation(violation) for violation in violations)
    assert not violations, f"axe found {len(violations)} violation(s) on {page.url}:\n{report}"
    assert_no_console_errors(page)


def test_admin__service_line_with_its_opening_rules__accessible(page: Page, admin_data) -> None:
    log_in(page)
    line = admin_data["line"]
    page.goto(f"/admin/bookings/serviceline/{line.pk}/change/")

    rows = page.locator("#opening_rules-group tbody tr.form-row.has_original")
    assert rows.count() == line.opening_rules.count() > 0
    # Each row's inputs are named by their column and their row; the template row for "Add another" too.
    assert rows.first.locator("td.field-opens_at input").get_attribute("aria-label").endswith(" 1")
    assert page.locator("#opening_rules-group select[aria-label]").count() >= 2 * rows.count()
    assert_accessible(page)

    page.locator("#opening_rules-group .add-row a").click()  # a new, empty row as the admin's script adds it
    assert_accessible(page)


def test_admin__notice_add_and_change__accessible(page: Page, admin_data) -> None:
    log_in(page)
    page.goto("/admin/partners/notice/add/")
    assert page.locator("#id_valid_from_0").get_attribute("aria-label")
    assert page.locator("#id_valid_until_1").get_attribute("aria-label")
    assert_accessible(page)

    page.goto(f"/admin/partners/notice/{admin_data['notice'].pk}/change/")
    assert_accessible(page)


def test_admin__booking_list_with_the_call_list_link__accessible(page: Page) -> None:
    log_in(page)
    page.goto("/admin/bookings/booking/")
    assert page.locator(".object-tools a[href*='/call-list/?date=']").count() == 1
    assert_accessible(page)


def test_admin__audit_events_and_who_handled_this_customer__accessible(page: Page) -> None:
    log_in(page)
    page.goto("/admin/partners/auditevent/")
    assert_accessible(page)

    page.locator(".object-tools a[href$='/auditevent/customer/']").click()
    page.wait_for_url("**/admin/partners/auditevent/customer/")
    assert_accessible(page)
    page.locator("#id_identity_code").fill(CUSTOMER_CODE)
    page.locator("form [type=submit]").last.click()
    page.wait_for_load_state()
    assert page.locator("#content table tbody tr").count() >= 2
    assert CUSTOMER_CODE not in page.content()
    assert_accessible(page)


@pytest.mark.parametrize("changelist", ["registry/organisation", "kelabooking/message"])
def test_admin__organisation_and_message_lists__accessible(page: Page, changelist: str) -> None:
    log_in(page)
    page.goto(f"/admin/{changelist}/")
    assert page.locator("#result_list tbody tr").count() >= 1
    assert_accessible(page)


def test_admin__breadcrumb_and_content_links__underlined(page: Page) -> None:
    """Told from the text around them by more than colour (axe's link-in-text-block, WCAG 1.4.1)."""
    log_in(page)
    page.goto("/admin/partners/auditevent/customer/")
    for link in page.locator("div.breadcrumbs a").all():
        assert "underline" in link.evaluate("a => getComputedStyle(a).textDecorationLine")
    page.goto("/admin/bookings/booking/")
    first = page.locator("#result_list tbody th a, #result_list tbody td a").first
    assert "underline" in first.evaluate("a => getComputedStyle(a).textDecorationLine")


@pytest.mark.parametrize("changelist", CHANGE_LISTS)
def test_admin__change_list_at_1280__no_column_cut_off(page: Page, changelist: str) -> None:
    page.set_viewport_size(VIEWPORT_1280)
    log_in(page)
    page.goto(f"/admin/{changelist}/")
    if changelist in FILLED:
        assert page.locator("#result_list tbody tr").count() >= 1, "an empty list says little about its columns"

    widths = page.evaluate(_WIDTHS)
    if widths is None:
        assert changelist not in FILLED
        return

    assert widths["resultsScroll"] <= widths["resultsClient"], f"the results scroll sideways: {widths}"
    assert widths["tableScroll"] <= widths["resultsClient"], widths
    assert widths["table"] <= widths["changelist"] <= widths["window"], widths
    assert widths["pageScroll"] <= widths["window"], f"the page scrolls sideways: {widths}"
    assert_no_console_errors(page)
