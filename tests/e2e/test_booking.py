"""Booking for a customer in a real browser, from Suomi.fi sandbox login to confirmation and cancellation."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest
import time_machine

from bookings.models import Booking, Customer, ServiceLine, Slot
from kelabooking import clock
from kelabooking.management.commands.load_demo import Command as LoadDemo
from tests.e2e.conftest import assert_accessible, expect
from tests.e2e.test_partner_login import HELENA, choose_organisation, identify

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ORDINARY = "241170-944V"
PROTECTED = "150580-912S"
TUOMAS = "020594X903P"  # booking mandates for Tampere and Tukiverkko ry


@pytest.fixture(autouse=True)
def booking_data(sandbox) -> ServiceLine:  # noqa: ARG001 - the sandbox fixture points sign-in at the live server
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
    if not Customer.objects.with_identity_code(ORDINARY).exists():
        Customer.objects.create(
            identity_code=ORDINARY,
            first_name="Asta",
            last_name="Asiakas",
            phone="+358401112222",
            email="asta@example.org",
        )
    if not Customer.objects.with_identity_code(PROTECTED).exists():
        Customer.objects.create(
            identity_code=PROTECTED,
            first_name="Salla",
            last_name="Suojattu",
            phone="+358409998877",
            email="salainen@example.org",
            non_disclosure=True,
        )
    return line


def sign_in_and_open(
    page: Page, language: str, code: str, *, person: str = HELENA, business_id: str = "0201256-6"
) -> None:
    identify(page, language, person)
    choose_organisation(page, business_id)
    page.wait_for_url(f"**/{language}/terms/")
    page.locator("#id_consent").check()
    page.locator("form.form button[type=submit]").click()
    page.wait_for_url(f"**/{language}/customer/")
    assert_accessible(page)
    page.locator("#id_identity_code").fill(code)
    page.locator("form.form button[type=submit]").click()
    page.wait_for_url(f"**/{language}/customer/overview/")
    assert code not in page.url
    assert_accessible(page)


def choose_matter(page: Page, line: ServiceLine, language: str, interpreter: str = "") -> None:
    page.locator(f"a[href='/{page.url.split('/')[3]}/book/']").click()
    assert_accessible(page)
    page.locator(f"input[name=service_line][value='{line.pk}']").check()
    page.locator(f"input[name=language][value='{language}']").check()
    if interpreter:
        page.locator("input[name=interpreter_needed][value=yes]").check()
        page.locator("#id_interpreter_language").select_option(interpreter)
    page.locator("form.form button[type=submit]").click()
    page.wait_for_url("**/book/time/")


@pytest.mark.parametrize("language", ["fi", "sv"])
def test_booking__interpreted_appointment_booked_seen_and_cancelled(page: Page, booking_data, language) -> None:
    sign_in_and_open(page, language, ORDINARY)
    choose_matter(page, booking_data, language, interpreter="so")
    assert_accessible(page)
    # The week view is swapped in place by htmx, its heading taking the focus; the link is a real link too.
    page.locator("#slot-list .week-nav a").last.click()
    page.wait_for_url("**/book/time/?week=*")
    expect(page.locator("#week-heading")).to_be_focused()
    assert_accessible(page)
    # The browser's back and forward buttons show whole pages, never the week alone: htmx asks for the page again and
    # puts what it gets in place of the page's (the mark on the page before is then gone).
    for move in (page.go_back, page.go_forward):
        page.evaluate("document.querySelector('main').dataset.before = 'yes'")
        move()
        expect(page.locator("main[data-before]")).to_have_count(0)
        expect(page.locator("main h1")).to_be_visible()
        expect(page.locator("header")).to_be_visible()
        expect(page.locator("#slot-list")).to_have_count(1)
    page.locator("#slot-list input[name=slot]").first.check()
    page.locator("#slot-list button[type=submit]").click()
    page.wait_for_url("**/book/contact/")
    assert page.locator("#id_phone").input_value() == "040 1112222"  # pre-filled from the register, as shown
    assert_accessible(page)
    page.locator("#id_description").fill("Asumistuen tarkistus")
    page.locator("form.form button[type=submit]").click()
    page.wait_for_url("**/book/check/")
    assert_accessible(page)
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url("**/booking/*/")
    booking = Booking.objects.get(
        status=Booking.Status.CONFIRMED, customer__in=Customer.objects.with_identity_code(ORDINARY)
    )
    assert booking.reference in page.locator("main").inner_text()
    assert booking.interpreter_language == "so"
    assert_accessible(page)

    page.goto(f"/{language}/customer/overview/")
    assert booking.reference in page.locator("main").inner_text()
    page.locator(f"a[href$='/booking/{booking.reference}/cancel/']").click()
    assert_accessible(page)
    page.locator("#id_reason").fill("Asiakas peruu")
    page.locator("form.form button[type=submit]").click()
    page.wait_for_url("**/customer/overview/")
    assert_accessible(page)
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CANCELLED


def test_booking__non_disclosure_customer__no_contact_details_in_any_page_source(page: Page, booking_data) -> None:
    """The register's contact details appear nowhere, and the phone typed for the booking only on the confirmation
    that follows: neither Helena reopening the booking nor Tuomas, acting for Tampere, sees it later."""
    sign_in_and_open(page, "fi", PROTECTED)
    sources = [page.content()]
    choose_matter(page, booking_data, "fi")
    page.locator("form.next-free button[type=submit]").click()
    page.wait_for_url("**/book/contact/")
    assert page.locator("#id_phone").input_value() == ""
    assert_accessible(page)
    sources.append(page.content())
    page.locator("#id_phone").fill("040 765 4321")
    page.locator("form.form button[type=submit]").click()
    page.wait_for_url("**/book/check/")
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url("**/booking/*/")
    assert "040 7654321" in page.locator("dl.summary").inner_text()  # the confirmation
    sources.append(page.content())
    booking_page = page.url

    page.reload()
    later = [page.content()]
    assert_accessible(page)
    page.context.clear_cookies()
    sign_in_and_open(page, "fi", PROTECTED, person=TUOMAS, business_id="0211675-2")
    later.append(page.content())
    page.goto(booking_page)
    assert "Helsingin kaupunki" in page.locator("dl.summary").inner_text()  # where it was made
    assert_accessible(page)
    later.append(page.content())
    for source in sources + later:
        for secret in ("+358409998877", "040 9998877", "0409998877", "salainen@example.org"):
            assert secret not in source
    for source in later:
        for typed in ("+358407654321", "040 7654321", "0407654321"):
            assert typed not in source


def test_booking__hold_expired_and_taken__nearest_times_offered_and_contact_kept(page: Page, booking_data) -> None:
    sign_in_and_open(page, "fi", ORDINARY)
    choose_matter(page, booking_data, "fi")
    page.locator("form.next-free button[type=submit]").click()
    page.wait_for_url("**/book/contact/")
    page.locator("#id_phone").fill("040 765 4321")
    page.locator("form.form button[type=submit]").click()
    page.wait_for_url("**/book/check/")
    hold = Booking.objects.get(status=Booking.Status.HELD, customer__in=Customer.objects.with_identity_code(ORDINARY))
    # The clock moves past the hold (the live server shares this process's clock), and meanwhile Kela's phone
    # service books the slot's only place for someone else.
    with time_machine.travel(clock.now() + dt.timedelta(minutes=11), tick=True):
        Booking.objects.create(
            reference="TKN-2345",
            slot=hold.slot,
            customer=Customer.objects.create(identity_code="110390Y933U"),
            status=Booking.Status.CONFIRMED,
            confirmed_at=clock.now(),
            contact_phone="+358401234567",
            channel=Booking.Channel.KELA_PHONE_SERVICE,
        )
        page.locator("form button[type=submit]").last.click()
        assert page.locator(".error-summary .alternatives button").count() >= 1
        assert_accessible(page)
        page.locator(".error-summary .alternatives button").first.click()
        page.wait_for_url("**/book/contact/")
        assert page.locator("#id_phone").input_value() == "040 7654321"  # what was typed is kept
    assert not Booking.objects.filter(pk=hold.pk).exists()  # the expired hold was released
