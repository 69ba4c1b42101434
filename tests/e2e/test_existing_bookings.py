"""A customer's upcoming booking told at the first step it concerns, in a real browser: Helena opens Liisa, who has a
telephone time for social assistance; the matter step says so beside that matter with the time, the reference and
the links to the booking, refuses the matter there when Helena chooses it anyway, and the time step of another
matter does not offer the time that overlaps it. axe finds nothing on each of these pages."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

import pytest
from django.utils import timezone

from bookings.models import Booking, Customer, ServiceLine, Slot
from bookings.selectors import free_slots
from bookings.services.booking import bookable_window
from kelabooking import clock
from kelabooking.management.commands.load_demo import Command as LoadDemo
from tests.e2e.conftest import assert_accessible, expect
from tests.e2e.test_booking import sign_in_and_open
from tests.e2e.test_caseworker_flow import step

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LIISA = "150385-9013"  # the demo customer in the register (bookings/demo.py)
REFERENCE = "TEL-4KQ7"
MATTER_BOOKED_FI = "Asiakkaalla on jo varattu aika tässä asiassa. Jos uusi aika tarvitaan, peru ensin aiempi varaus."


@pytest.fixture
def liisas_time(sandbox) -> tuple[Booking, Slot]:  # noqa: ARG001 - the sandbox fixture points sign-in at the live server
    """The demo data, and Liisa's upcoming telephone time for social assistance, booked by Kela's phone service at
    the time of the first free time of housing benefits in Finnish: that time is the one that must not be offered."""
    LoadDemo().handle()
    social, housing = (ServiceLine.objects.get(name_en=name) for name in ("Social assistance", "Housing benefits"))
    now = clock.now()
    earliest, latest = bookable_window(now)
    first_housing = free_slots(service_line=housing, language="fi", start=earliest, end=latest, now=now, limit=1)[0]
    social_slot = Slot.objects.filter(
        service_line=social,
        language="fi",
        starts_at__lt=first_housing.ends_at,
        ends_at__gt=first_housing.starts_at,
    ).first()
    assert social_slot is not None, "the demo's lines share their times"
    booking = Booking.objects.create(
        reference=REFERENCE,
        slot=social_slot,
        customer=Customer.objects.with_identity_code(LIISA).get(),
        status=Booking.Status.CONFIRMED,
        confirmed_at=now,
        contact_phone="+358401110001",
        channel=Booking.Channel.KELA_PHONE_SERVICE,
    )
    return booking, first_housing


def test_matter_step__liisas_booked_matter__told_at_once_refused_there_and_overlapping_time_not_offered(
    page: Page, liisas_time: tuple[Booking, Slot]
) -> None:
    booking, overlapping = liisas_time
    social, housing = booking.slot.service_line, overlapping.service_line
    sign_in_and_open(page, "fi", LIISA)

    # The matter step: beside social assistance, Liisa's time, its reference and the links to the booking.
    page.locator("main a[href='/fi/book/']").click()
    page.wait_for_url("**/fi/book/")
    note = page.locator(f"#existing-{social.pk}")
    expect(note).to_be_visible()
    starts = timezone.localtime(booking.slot.starts_at)
    said = note.inner_text()
    assert f"{starts.day}.{starts.month}.{starts.year} klo {starts.hour}" in said
    assert f"Varaustunnus: {REFERENCE}." in said
    for path in ("", "move/", "cancel/"):
        expect(note.locator(f"a[href='/fi/booking/{REFERENCE}/{path}']")).to_have_count(1)
    expect(page.locator(f"input[name=service_line][value='{social.pk}']")).to_have_attribute(
        "aria-describedby", f"existing-{social.pk}"
    )
    expect(page.locator(f"#existing-{housing.pk}")).to_have_count(0)
    step(page, "fi", "existing-01-matter")

    # Chosen anyway: refused at this step, with the rule's own words, the choices kept.
    page.locator(f"input[name=service_line][value='{social.pk}']").check()
    page.locator("input[name=language][value=fi]").check()
    page.locator("form.form button[type=submit]").click()
    expect(page.locator("#error-summary")).to_be_visible()
    assert re.search(r"/fi/book/(#.*)?$", page.url), page.url
    expect(page.locator("#error-summary")).to_contain_text(MATTER_BOOKED_FI)
    expect(page.locator(f"input[name=service_line][value='{social.pk}']")).to_be_checked()
    expect(page.locator(f"#existing-{social.pk}")).to_be_visible()
    step(page, "fi", "existing-02-matter-refused")

    # The booking's page is one link away, to move it (the page that moves it is checked as well).
    page.locator(f"#existing-{social.pk} a[href='/fi/booking/{REFERENCE}/move/']").click()
    page.wait_for_url(f"**/fi/booking/{REFERENCE}/move/")
    assert_accessible(page)
    page.goto("/fi/book/")

    # Another matter: its time that overlaps Liisa's is not offered, neither as the next free time nor in the week.
    page.locator(f"input[name=service_line][value='{housing.pk}']").check()
    page.locator("input[name=language][value=fi]").check()
    page.locator("form.form button[type=submit]").click()
    page.wait_for_url("**/fi/book/time/")
    now = clock.now()
    after = free_slots(
        service_line=housing, language="fi", start=booking.slot.ends_at, end=bookable_window(now)[1], now=now, limit=1
    )[0]
    expect(page.locator("form.next-free button[name=slot]")).to_have_attribute("value", str(after.pk))
    step(page, "fi", "existing-03-time")
    day = timezone.localtime(overlapping.starts_at).date()
    monday = day - dt.timedelta(days=day.weekday())
    page.goto(f"/fi/book/time/?week={day.isoformat()}")
    expect(page.locator("#week-heading")).to_contain_text(f"{monday.day}.{monday.month}.")
    expect(page.locator(f"input[value='{overlapping.pk}'], button[value='{overlapping.pk}']")).to_have_count(0)
    assert_accessible(page)
