"""The customer's upcoming bookings told at the step they concern (DESIGN.md §4 rule 4), through the partner pages: the
matter step says which matters already have a time and refuses them there; the time step and the move page leave out
the times that overlap another booking, and the hold refuses them if they are posted anyway; what was booked
meanwhile is still refused by the confirm, which sends the partner back to the step it concerns."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from bookings.models import Booking, Customer, ServiceLine, Slot
from kelabooking import clock
from tests.bookings.test_caseworker_flow import assert_error_state, choose_matter, content, error_summary, text
from tests.bookings.test_journey import book, confirm_form, open_customer, slot_at, url
from tests.bookings.test_journey import customer as customer  # noqa: F401 - fixtures
from tests.bookings.test_journey import line as line  # noqa: F401
from tests.bookings.test_journey import organisation as organisation  # noqa: F401
from tests.bookings.test_journey import partner as partner  # noqa: F401

pytestmark = pytest.mark.django_db

LANGUAGES = ["fi", "sv", "en"]
MATTER_BOOKED = {
    "fi": "Asiakkaalla on jo varattu aika tässä asiassa. Jos uusi aika tarvitaan, peru ensin aiempi varaus.",
    "sv": "Kunden har redan en bokad tid för det här ärendet. Avboka den först om en ny tid behövs.",
    "en": "The customer already has a booked time for this matter. Cancel it first if a new time is needed.",
}
TIME_BOOKED = {
    "fi": "Asiakkaalla on jo toinen varaus samaan aikaan. Valitse toinen aika.",
    "sv": "Kunden har redan en annan bokning vid samma tid. Välj en annan tid.",
    "en": "The customer already has another booking at this time. Choose another time.",
}
NOT_SHOWN = "Times when the customer already has another booking are not shown."


@pytest.fixture
def other_line() -> ServiceLine:
    return ServiceLine.objects.create(name_fi="Toimeentulotuki", name_sv="Utkomststöd", name_en="Social assistance")


def booked(customer: Customer, slot: Slot, *, reference: str = "TEL-2345") -> Booking:
    """An upcoming telephone time of `customer`, booked by Kela's phone service."""
    return Booking.objects.create(
        reference=reference,
        slot=slot,
        customer=customer,
        status=Booking.Status.CONFIRMED,
        confirmed_at=clock.now(),
        contact_phone="+358401112222",
        channel=Booking.Channel.KELA_PHONE_SERVICE,
    )


def slot_at_minute(line: ServiceLine, *, days: int, hour: int, minute: int) -> Slot:
    local = clock.localnow().replace(hour=hour, minute=minute, second=0, microsecond=0) + dt.timedelta(days=days)
    return Slot.objects.create(
        service_line=line, language="fi", starts_at=local, ends_at=local + dt.timedelta(minutes=45), capacity=2
    )


def offered(page: str) -> set[int]:
    """The slots the time page lets the partner pick: the next free time and the week's radios."""
    return {int(pk) for pk in re.findall(r'name="slot" value="(\d+)"', page)}


def holds() -> int:
    return Booking.objects.filter(status=Booking.Status.HELD).count()


# --- The matter step ----------------------------------------------------------------------------------------------


def test_matter__booked_matter__note_with_time_reference_and_links_read_with_its_radio(
    client, partner, customer, line, other_line
) -> None:
    booking = booked(customer, slot_at(other_line, days=3, hour=13))
    open_customer(client)

    page = content(client.get(url("bookings:matter")))

    note = re.search(rf'<p class="choice__existing" id="existing-{other_line.pk}">(.*?)</p>', page, re.S)
    assert note, "the booked matter says nothing beside its option"
    local = clock.localnow() + dt.timedelta(days=3)
    said = text(re.sub(r'<span class="visually-hidden">.*?</span>', "", note.group(1), flags=re.S))
    assert f"{local.day}.{local.month}.{local.year} at 13:00" in said
    assert f"Reference: {booking.reference}." in said  # seen, not only read out with the links
    for name in ("bookings:done", "bookings:move", "bookings:cancel"):
        assert f'href="{url(name, reference=booking.reference)}"' in note.group(1)
    radio = re.search(rf'<input type="radio" name="service_line" value="{other_line.pk}"[^>]*>', page).group(0)
    assert f'aria-describedby="existing-{other_line.pk}"' in radio  # a screen reader reads the note with the option
    unbooked = re.search(rf'<input type="radio" name="service_line" value="{line.pk}"[^>]*>', page).group(0)
    assert "aria-describedby" not in unbooked
    assert f'id="existing-{line.pk}"' not in page


@pytest.mark.parametrize("language", LANGUAGES)
def test_matter__booked_matter_chosen__the_rules_error_at_this_step_and_nothing_held_or_kept(
    client, partner, customer, line, other_line, language
) -> None:
    booking = booked(customer, slot_at(other_line, days=3))
    slot_at(other_line, days=5)
    open_customer(client)

    response = client.post(
        url("bookings:matter", language),
        {"service_line": other_line.pk, "language": "sv", "interpreter_needed": "yes", "interpreter_language": "so"},
    )

    page = content(response)
    assert_error_state(page, fields=["service_line"])
    assert text(error_summary(page)[1][0][1]) == MATTER_BOOKED[language]
    assert f'id="existing-{other_line.pk}"' in page  # the booking and its links are still beside the matter
    assert f'href="{url("bookings:move", language, reference=booking.reference)}"' in page
    assert re.search(rf'<input type="radio" name="service_line" value="{other_line.pk}"[^>]*checked', page)
    assert re.search(r'<input type="radio" name="language" value="sv"[^>]*checked', page)
    assert client.get(url("bookings:time"))["Location"] == url("bookings:matter")  # nothing kept to go on with
    # Another matter goes on as before.
    assert choose_matter(client, line)["Location"] == url("bookings:time")
    assert holds() == 0


# --- The time step ------------------------------------------------------------------------------------------------


def test_time__times_overlapping_another_booking__not_offered_and_the_page_says_so(
    client, partner, customer, line, other_line
) -> None:
    booked(customer, slot_at(other_line, days=2, hour=10))  # 10:00–10:45
    overlapping = [slot_at_minute(line, days=2, hour=9, minute=30), slot_at(line, days=2, hour=10)]
    back_to_back = slot_at_minute(line, days=2, hour=10, minute=45)
    before = slot_at_minute(line, days=2, hour=9, minute=15)  # ends at 10:00
    open_customer(client)
    choose_matter(client, line)

    page = content(client.get(url("bookings:time")))

    assert offered(page) == {before.pk, back_to_back.pk}
    assert not offered(page) & {slot.pk for slot in overlapping}
    next_free = re.search(r'<form [^>]*class="next-free">(.*?)</form>', page, re.S).group(1)
    assert f'value="{before.pk}"' in next_free
    assert NOT_SHOWN in text(page)
    # The week as htmx swaps it in leaves them out too.
    week = content(client.get(url("bookings:time"), HTTP_HX_REQUEST="true"))
    assert offered(week) == {before.pk, back_to_back.pk}


def test_time__no_other_bookings__every_free_time_offered_and_no_note(client, partner, customer, line) -> None:
    slots = {slot_at(line, days=2, hour=hour).pk for hour in (9, 10, 11)}
    open_customer(client)
    choose_matter(client, line)

    page = content(client.get(url("bookings:time")))

    assert offered(page) == slots
    assert NOT_SHOWN not in text(page)


@pytest.mark.parametrize("language", LANGUAGES)
def test_time__overlapping_time_posted_anyway__refused_with_the_reason_and_nothing_held(
    client, partner, customer, line, other_line, language
) -> None:
    booked(customer, slot_at(other_line, days=2, hour=10))
    overlapping = slot_at(line, days=2, hour=10)
    free = slot_at(line, days=2, hour=11)
    open_customer(client)
    choose_matter(client, line)

    page = content(client.post(url("bookings:time", language), {"slot": overlapping.pk}))

    assert text(error_summary(page)[1][0][1]) == TIME_BOOKED[language]
    assert offered(page) == {free.pk}
    assert holds() == 0


def test_time__matter_booked_after_the_matter_step__back_to_the_matter_step_with_the_rules_error(
    client, partner, customer, line
) -> None:
    slot_at(line, days=2)
    open_customer(client)
    choose_matter(client, line)
    booking = booked(customer, slot_at(line, days=4))  # meanwhile, by Kela's phone service

    response = client.get(url("bookings:time"))

    assert response["Location"] == url("bookings:matter")
    page = content(client.get(response["Location"]))
    assert MATTER_BOOKED["en"] in text(page)
    assert f'id="existing-{line.pk}"' in page
    assert f'href="{url("bookings:cancel", reference=booking.reference)}"' in page
    # The week that htmx would swap in asks the browser to go there instead.
    htmx = client.get(url("bookings:time"), HTTP_HX_REQUEST="true")
    assert htmx["HX-Redirect"] == url("bookings:matter")


def test_time__query_count__independent_of_the_customers_bookings(
    client, partner, customer, line, other_line, django_assert_max_num_queries, django_assert_num_queries
) -> None:
    for day in range(1, 8):
        slot_at(line, days=day)
    open_customer(client)
    choose_matter(client, line)
    with django_assert_max_num_queries(10) as without:  # as the week's partial (test_journey), and the page's own
        client.get(url("bookings:time"))
    for day in range(1, 6):  # as many bookings of other matters, one of them at a time offered
        booked(customer, slot_at(ServiceLine.objects.create(name_en=f"M{day}"), days=day), reference=f"TEL-{day}AAA")

    with django_assert_num_queries(len(without)):
        page = content(client.get(url("bookings:time")))
    assert NOT_SHOWN in text(page)


# --- The confirm: what was booked meanwhile ---------------------------------------------------------------------


def _to_the_check_page(client, line: ServiceLine, slot: Slot):
    choose_matter(client, line)
    client.post(url("bookings:time"), {"slot": slot.pk})
    client.post(url("bookings:contact"), {"phone": "040 765 4321", "description": "Asumistuki"})
    return client.get(url("bookings:check"))


def test_confirm__same_matter_booked_meanwhile__refused_and_the_matter_step_says_so(
    client, partner, customer, line
) -> None:
    open_customer(client)
    check = _to_the_check_page(client, line, slot_at(line, days=2))
    booking = booked(customer, slot_at(line, days=4))  # meanwhile, by Kela's phone service

    response = client.post(url("bookings:check"), confirm_form(check))

    assert response["Location"] == url("bookings:matter")
    page = content(client.get(response["Location"]))
    assert MATTER_BOOKED["en"] in text(page)
    assert f'href="{url("bookings:done", reference=booking.reference)}"' in page
    assert list(Booking.objects.filter(status=Booking.Status.CONFIRMED)) == [booking]


def test_confirm__overlapping_time_booked_meanwhile__refused_on_the_time_step_with_the_typing_kept(
    client, partner, customer, line, other_line
) -> None:
    held = slot_at(line, days=2, hour=10)
    free = slot_at(line, days=2, hour=11)
    open_customer(client)
    check = _to_the_check_page(client, line, held)
    booking = booked(customer, slot_at(other_line, days=2, hour=10))  # meanwhile, by Kela's phone service

    page = content(client.post(url("bookings:check"), confirm_form(check)))

    assert text(error_summary(page)[1][0][1]) == TIME_BOOKED["en"]
    assert offered(page) == {free.pk}  # the held time is no longer offered
    assert list(Booking.objects.filter(status=Booking.Status.CONFIRMED)) == [booking]
    client.post(url("bookings:time"), {"slot": free.pk})
    contact = content(client.get(url("bookings:contact")))
    assert "Asumistuki" in contact  # what was typed is kept


# --- Moving a booking ---------------------------------------------------------------------------------------------


def test_move__times_overlapping_another_booking__not_offered_and_refused_if_posted(
    client, partner, customer, line, other_line
) -> None:
    open_customer(client)
    book(client, line, slot_at(line, days=5))
    moving = Booking.objects.get(status=Booking.Status.CONFIRMED)
    booked(customer, slot_at(other_line, days=2, hour=10))
    overlapping = slot_at(line, days=2, hour=10)
    free = slot_at(line, days=2, hour=11)
    move_url = url("bookings:move", reference=moving.reference)

    page = content(client.get(move_url))
    assert overlapping.pk not in offered(page)
    assert free.pk in offered(page)
    assert NOT_SHOWN in text(page)

    page = content(client.post(move_url, {"slot": overlapping.pk}))
    assert text(error_summary(page)[1][0][1]) == TIME_BOOKED["en"]
    moving.refresh_from_db()
    assert moving.slot_id != overlapping.pk
