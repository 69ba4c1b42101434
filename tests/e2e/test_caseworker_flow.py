"""A caseworker's booking in a real browser: the whole journey in Finnish and Swedish with a screenshot and an axe-core
scan of every step, the interpreter's language shown only when an interpreter is needed, and the registry request
link of an organisation not in the registry filled in."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bookings.models import Booking, Customer, ServiceLine, Slot
from kelabooking import clock
from kelabooking.management.commands.load_demo import Command as LoadDemo
from tests.e2e.conftest import assert_accessible, assert_no_axe_violations, expect
from tests.e2e.test_booking import ORDINARY, sign_in_and_open
from tests.e2e.test_partner_login import HELENA, OUTI, choose_organisation, identify

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# What each language calls things the journey checks on the pages.
WORDS = {
    "fi": {"step": "Vaihe {}/4", "acting": "Helsingin kaupunki", "interpreter": "tulkki", "somali": "somali"},
    "sv": {"step": "Steg {} av 4", "acting": "Helsingin kaupunki", "interpreter": "tolk", "somali": "somaliska"},
}


@pytest.fixture(autouse=True)
def booking_data(sandbox) -> ServiceLine:  # noqa: ARG001 - the sandbox fixture points sign-in at the live server
    """The demo data, a matter with free times in Finnish and Swedish, and Asta Asiakas in the register (as
    tests/e2e/test_booking.py's fixture, the customer found through the keyed index)."""
    LoadDemo().handle()
    line = ServiceLine.objects.create(
        name_fi="Testiasia", name_sv="Testärende", name_en="Test matter", position=0, partner_appointment_minutes=45
    )
    base = clock.localnow().replace(hour=9, minute=0, second=0, microsecond=0)
    for days in range(1, 15):
        for hour in (9, 10, 13):
            for language in ("fi", "sv"):
                start = base + dt.timedelta(days=days, hours=hour - 9)
                Slot.objects.create(
                    service_line=line,
                    language=language,
                    starts_at=start,
                    ends_at=start + dt.timedelta(minutes=45),
                    capacity=1,
                )
    customer = Customer.objects.with_identity_code(ORDINARY).first() or Customer(identity_code=ORDINARY)
    customer.first_name, customer.last_name = "Asta", "Asiakas"
    customer.phone, customer.email = "+358401112222", "asta@example.org"
    customer.save()
    return line


def step(page: Page, language: str, name: str, *, refused_with: int | None = None) -> None:
    """One step of the journey: a full-page screenshot for people to read, and axe-core finding nothing."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"journey-{language}-{name}.png"), full_page=True)
    expect(page.locator("html")).to_have_attribute("lang", language)
    assert_accessible(page, refused_with=refused_with)


def arrive(page: Page, path: str) -> None:
    """Wait for the page at `path`: a redirect keeps the fragment an error summary's link left in the address."""
    page.wait_for_url(re.compile(rf"^[^?#]*{re.escape(path)}(#.*)?$"))


def booking_for(page: Page) -> str:
    return page.locator(".booking-for").first.inner_text()


@pytest.mark.parametrize("language", ["fi", "sv"])
def test_journey__login_to_the_booking_page__every_step_screenshotted_and_accessible(
    page: Page, booking_data: ServiceLine, language: str
) -> None:
    words = WORDS[language]
    # Login: the start page, Suomi.fi identification in the sandbox, the organisation choice, the terms.
    page.goto(f"/{language}/")
    step(page, language, "01-start")
    page.locator(f"main a[href='/{language}/login/']").click()
    page.wait_for_url("**/sandbox/oidc/authorize**")
    step(page, language, "02-identification")
    page.locator(f"input[name=person][value='{HELENA}']").check()
    page.locator("button[value=identify]").click()
    page.wait_for_url(f"**/{language}/work/")
    step(page, language, "03-work")
    page.locator("form[action$='/work/organisation/'] button").click()
    page.wait_for_url("**/sandbox/valtuudet/oauth/authorize**")
    step(page, language, "04-organisation")
    page.locator("input[name=organisation][value='0201256-6']").check()
    page.locator("button[value=choose]").click()
    page.wait_for_url(f"**/{language}/terms/")
    step(page, language, "05-terms")
    page.locator("#id_consent").check()
    page.locator("form.form button[type=submit]").click()

    # The customer: a mistyped code first, kept in the field with the error.
    page.wait_for_url(f"**/{language}/customer/")
    step(page, language, "06-customer")
    page.locator("#id_identity_code").fill("241170-944X")
    page.locator("form.form button[type=submit]").click()
    expect(page.locator("#error-summary")).to_be_visible()
    expect(page.locator("#id_identity_code")).to_have_value("241170-944X")
    step(page, language, "07-customer-error")
    page.locator("#error-summary a").first.click()
    expect(page.locator("#id_identity_code")).to_be_focused()
    page.locator("#id_identity_code").fill(ORDINARY)
    page.locator("form.form button[type=submit]").click()
    arrive(page, f"/{language}/customer/overview/")
    step(page, language, "08-overview")

    # Step 1, the matter: with an interpreter.
    page.locator(f"main a[href='/{language}/book/']").click()
    page.wait_for_url(f"**/{language}/book/")
    assert words["step"].format(1) in booking_for(page)
    page.locator(f"input[name=service_line][value='{booking_data.pk}']").check()
    page.locator(f"input[name=language][value='{language}']").check()
    page.locator("input[name=interpreter_needed][value=yes]").check()
    page.locator("#id_interpreter_language").select_option("so")
    step(page, language, "09-matter")
    page.locator("form.form button[type=submit]").click()

    # Step 2, the time: first without choosing one, then the week's first time.
    page.wait_for_url(f"**/{language}/book/time/")
    assert words["step"].format(2) in booking_for(page)
    assert f"{words['interpreter']}: {words['somali']}" in page.locator("main").inner_text().lower()
    step(page, language, "10-time")
    page.locator("#slot-list form button[type=submit]").click()
    expect(page.locator("#error-summary")).to_be_visible()
    step(page, language, "11-time-error")
    page.locator("#error-summary a").first.click()
    first_time = page.locator("#slot-list input[name=slot]").first
    expect(first_time).to_be_focused()
    first_time.check()
    page.locator("#slot-list form button[type=submit]").click()

    # Step 3, the contact details: the register's, as they are shown.
    arrive(page, f"/{language}/book/contact/")
    assert words["step"].format(3) in booking_for(page)
    expect(page.locator("#id_phone")).to_have_value("040 1112222")
    page.locator("#id_description").fill("Asumistuen tarkistus")
    step(page, language, "12-contact")
    page.locator("form.form button[type=submit]").click()

    # Step 4, the check.
    arrive(page, f"/{language}/book/check/")
    assert words["step"].format(4) in booking_for(page)
    assert words["somali"] in page.locator("dl.summary").inner_text().lower()
    step(page, language, "13-check")
    page.locator("main form button[type=submit]").last.click()

    # The confirmation, the overview and the booking's own page.
    page.wait_for_url(f"**/{language}/booking/*/")
    booking = Booking.objects.get(
        status=Booking.Status.CONFIRMED, customer__in=Customer.objects.with_identity_code(ORDINARY)
    )
    assert booking.reference in page.locator(".panel--confirmation").inner_text()
    assert "Asta Asiakas" in booking_for(page)
    assert words["acting"] in booking_for(page)
    assert words["somali"] in page.locator("dl.summary").inner_text().lower()
    step(page, language, "14-confirmation")
    page.locator(f"main a[href='/{language}/customer/overview/']").last.click()
    arrive(page, f"/{language}/customer/overview/")
    assert booking.reference in page.locator("main").inner_text()
    step(page, language, "15-overview-booked")
    page.locator(f".booking-line a[href='/{language}/booking/{booking.reference}/']").click()
    page.wait_for_url(f"**/{language}/booking/{booking.reference}/")
    expect(page.locator(f"a[href='/{language}/booking/{booking.reference}/move/']")).to_be_visible()
    expect(page.locator(f"a[href='/{language}/booking/{booking.reference}/cancel/']")).to_be_visible()
    step(page, language, "16-booking")


def test_matter__interpreter_language__hidden_when_no_shown_when_yes(page: Page, booking_data: ServiceLine) -> None:
    sign_in_and_open(page, "fi", ORDINARY)
    page.locator("a[href='/fi/book/']").click()
    page.wait_for_url("**/fi/book/")
    language = page.locator("#id_interpreter_language")
    expect(page.locator("input[name=interpreter_needed][value=no]")).to_be_checked()
    expect(language).to_be_hidden()
    page.locator("input[name=interpreter_needed][value=yes]").check()
    expect(language).to_be_visible()
    assert_accessible(page)
    # Sorted by the Finnish names (the view test checks the order; here that the browser shows the same list).
    names = language.locator("option").all_inner_texts()[1:]
    assert names[:3] == ["Albaani", "Amhara", "Arabia"]
    page.locator("input[name=interpreter_needed][value=no]").check()
    expect(language).to_be_hidden()
    # An interpreter needed but no language chosen: the error shows the field, whatever the script does.
    page.locator(f"input[name=service_line][value='{booking_data.pk}']").check()
    page.locator("input[name=language][value=fi]").check()
    page.locator("input[name=interpreter_needed][value=yes]").check()
    page.locator("form.form button[type=submit]").click()
    expect(page.locator("#error-summary")).to_be_visible()
    expect(language).to_be_visible()
    expect(page.locator("input[name=interpreter_needed][value=yes]")).to_be_checked()
    page.locator("#error-summary a[href='#id_interpreter_language']").click()
    expect(language).to_be_focused()
    assert_accessible(page)


@pytest.mark.parametrize("language", ["fi", "sv"])
def test_not_in_registry__request_link__fills_in_the_organisations_name_and_business_id(
    page: Page, language: str
) -> None:
    identify(page, language, OUTI)
    choose_organisation(page)
    page.wait_for_url("**/valtuudet/callback/**")
    link = page.locator("main a[href*='/registry/request/?']")
    expect(link).to_have_count(1)
    assert_accessible(page, refused_with=403)
    link.click()
    page.wait_for_url(re.compile(rf"/{language}/registry/request/\?"))
    expect(page.locator("input[name=business_id]")).to_have_value("2718282-8")
    expect(page.locator("input[name=organisation_name]")).to_have_value("Naapuriapu ry")
    assert_no_axe_violations(page)  # the console's only error is the refusal page's own 403, checked above


def test_overview__long_history__older_and_newer_pages_accessible(page: Page, booking_data: ServiceLine) -> None:
    customer = Customer.objects.with_identity_code(ORDINARY).get()
    base = clock.localnow().replace(hour=9, minute=0, second=0, microsecond=0)
    for days in range(1, 26):  # 25 earlier bookings: a page of 20 and one of 5
        start = base - dt.timedelta(days=days)
        slot = Slot.objects.create(
            service_line=booking_data,
            language="fi",
            starts_at=start,
            ends_at=start + dt.timedelta(minutes=45),
            capacity=1,
        )
        Booking.objects.create(
            reference=f"OLD-{days:04d}".replace("0", "A").replace("1", "B"),
            slot=slot,
            customer=customer,
            status=Booking.Status.CONFIRMED,
            confirmed_at=start - dt.timedelta(days=7),
            contact_phone="+358401112222",
            channel=Booking.Channel.KELA_PHONE_SERVICE,
        )
    sign_in_and_open(page, "fi", ORDINARY)
    history = page.locator("#history-heading ~ ul.booking-list > li")
    expect(history).to_have_count(20)
    expect(page.get_by_text("Varaukset 1–20, uusin ensin.")).to_be_visible()
    page.get_by_role("link", name="Vanhemmat varaukset").click()
    page.wait_for_url("**/customer/overview/?page=2#history-heading")
    expect(history).to_have_count(5)
    assert_accessible(page)
    page.get_by_role("link", name="Uudemmat varaukset").click()
    page.wait_for_url("**/customer/overview/?page=1#history-heading")
    expect(history).to_have_count(20)
