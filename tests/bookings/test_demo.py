"""The bookings part of `load_demo`: lines, opening hours, four weeks of slots, and customers telling the story."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db.models import Count, F
from django.urls import reverse
from stdnum.fi import hetu

from bookings.demo import DEMO_CUSTOMERS, DEMO_PARTNER, DEMO_SERVICE_LINES
from bookings.models import Booking, Customer, OpeningRule, ServiceLine, Slot
from kelabooking import clock
from partners.models import User

pytestmark = pytest.mark.django_db


def snapshot() -> tuple:
    return (
        sorted(ServiceLine.objects.values_list("name_en", "name_fi", "name_sv", "partner_appointment_minutes")),
        sorted(OpeningRule.objects.values_list("service_line__name_en", "language", "weekday", "agents", "valid_from")),
        sorted(Slot.objects.values_list("pk", "service_line", "language", "starts_at", "capacity")),
        sorted(Customer.objects.values_list("identity_code", "first_name", "last_name", "phone", "non_disclosure")),
        sorted(Booking.objects.values_list("reference", "slot", "customer", "status", "channel")),
        User.objects.count(),
    )


@pytest.fixture
def demo() -> None:
    call_command("load_demo")


def customer(last_name: str) -> Customer:
    return Customer.objects.get(last_name=last_name)


def test_load_demo__twice__is_idempotent(demo) -> None:
    first = snapshot()

    call_command("load_demo")

    assert snapshot() == first


def test_load_demo__service_lines__have_three_languages_and_opening_hours(demo) -> None:
    assert ServiceLine.objects.count() == len(DEMO_SERVICE_LINES) == 8
    assert ServiceLine.objects.get(name_en="Social assistance").name_fi == "Toimeentulotuki"
    assert ServiceLine.objects.get(name_en="Social assistance").name_sv == "Utkomststöd"
    assert set(ServiceLine.objects.values_list("partner_appointment_minutes", flat=True)) == {45}
    today = clock.localnow().date()
    assert set(OpeningRule.objects.values_list("valid_from", flat=True)) == {today}
    for language, weekdays, agents in [
        ("fi", {0, 1, 2, 3, 4}, {2, 3}),
        ("sv", {0, 1, 2, 3, 4}, {2}),
        ("en", {1, 3}, {1}),
    ]:
        rules = OpeningRule.objects.filter(language=language)
        assert set(rules.values_list("weekday", flat=True)) == weekdays, language
        assert set(rules.values_list("agents", flat=True)) == agents, language
    # Four weeks of slots in every language; English only on Tuesdays and Thursdays.
    upcoming = Slot.objects.filter(starts_at__gt=clock.now())
    assert set(upcoming.values_list("language", flat=True)) == {"fi", "sv", "en"}
    assert {slot.starts_at.weekday() for slot in upcoming.filter(language="en")} <= {1, 3}
    assert upcoming.count() > 1000


def test_load_demo__customers__have_distinct_temporary_identity_codes(demo) -> None:
    codes = [data["identity_code"] for data in DEMO_CUSTOMERS]
    assert len(codes) == len(set(codes)) == 4
    for code in codes:
        assert hetu.is_valid(code, allow_temporary=True), code
        assert not hetu.is_valid(code), code  # temporary: individual number 900–999
        assert 900 <= int(code[7:10]) <= 999
        assert Customer.objects.with_identity_code(code).get().source == Customer.Source.KELA_REGISTER


def test_load_demo__customers__tell_the_contact_detail_stories(demo) -> None:
    ordinary = customer("Tavallinen")
    assert ordinary.phone
    assert ordinary.email
    assert not ordinary.non_disclosure
    no_contact = customer("Yhteystiedoton")
    assert (no_contact.phone, no_contact.email) == ("", "")
    protected = customer("Suojattu")
    assert protected.non_disclosure
    assert protected.phone  # in the register, and never to be shown
    assert protected.email


def test_load_demo__history_customer__has_bookings_from_every_channel_and_one_upcoming(demo) -> None:
    bookings = Booking.objects.filter(customer=customer("Varaaja")).select_related("slot", "organisation", "booked_by")
    now = clock.now()

    assert {booking.channel for booking in bookings} == set(Booking.Channel.values)
    assert all(booking.status == Booking.Status.CONFIRMED for booking in bookings)
    upcoming = [booking for booking in bookings if booking.slot.starts_at > now]
    assert len(upcoming) == 1
    assert len([booking for booking in bookings if booking.slot.starts_at < now]) >= 3
    for booking in bookings.filter(channel=Booking.Channel.PARTNER):
        assert booking.organisation.business_id == "1000000-4"  # Tukiverkko ry
        assert booking.booked_by.identity_code == DEMO_PARTNER["identity_code"]
        assert booking.booked_by.is_partner
        assert not booking.booked_by.has_usable_password()
    # The other customers of the story have no bookings: the partner makes their first. (The bookings of the
    # capacity and demand view's customers are tested below.)
    for name in ("Tavallinen", "Yhteystiedoton", "Suojattu"):
        assert not Booking.objects.filter(customer=customer(name)).exists()


def test_load_demo__statistics__fill_the_capacity_and_demand_charts(demo, client) -> None:

    client.force_login(User.objects.get(username="fpa-admin"))
    response = client.get(reverse("admin:bookings_capacity_demand"), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    found = response.context["insights"]
    statuses = {cell.status for row in found.capacity.rows for cell in row.cells}
    assert {"full", "busy", "closed", ""} <= statuses
    assert found.year_earlier_shown
    made = [row for row in found.demand.rows if row.group == "made"]
    assert all(sum(cell.value for cell in row.cells) > 0 for row in made)  # every line booked in twelve weeks
    assert sum(cell.value for row in found.demand.rows if row.group == "cancelled" for cell in row.cells) > 0
    assert {row.cells[0].status for row in found.interpreters.rows} == {"", "suppressed"}  # rare languages "< 5"
    assert all(row.cells[0].value for row in found.channels.rows)


def test_load_demo__statistics__keep_the_booking_rules_for_upcoming_times(demo) -> None:
    """One upcoming booking a customer and line, none overlapping, no slot over capacity (DESIGN.md §4)."""
    now = clock.now()
    upcoming = Booking.objects.upcoming(now=now).select_related("slot")
    per_line = upcoming.values("customer", "slot__service_line").annotate(count=Count("pk"))
    assert max(row["count"] for row in per_line) == 1
    times: dict[int, list] = {}
    for booking in upcoming:
        for starts, ends in times.get(booking.customer_id, []):
            assert booking.slot.ends_at <= starts or booking.slot.starts_at >= ends
        times.setdefault(booking.customer_id, []).append((booking.slot.starts_at, booking.slot.ends_at))
    over = Slot.objects.with_taken(now=now).filter(taken__gt=F("capacity"))
    assert not over.exists()
