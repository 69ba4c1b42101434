"""What a caseworker sees on the way through a booking, through the test client: whom the booking is for and where
they are, the matter step's existing times, buttons that say what they do, errors that keep what was typed and read
as one sentence, statuses on the overview, moving a booking, the interpreter's language, the partner appointment's
length, notices on the start page, the catalogues' quotation marks and the 404 and 500 pages."""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path

import polib
import pytest
from django.utils import timezone

from bookings.models import Booking, ServiceLine
from kelabooking import clock
from kelabooking.models import Message
from partners.models import AuditEvent, Notice
from registry.models import Organisation
from tests.bookings.test_journey import CUSTOMER_CODE, NEW_CODE, book, confirm_form, open_customer, slot_at, url
from tests.bookings.test_journey import customer as customer  # noqa: F401 - fixtures
from tests.bookings.test_journey import line as line  # noqa: F401
from tests.bookings.test_journey import organisation as organisation  # noqa: F401
from tests.bookings.test_journey import partner as partner  # noqa: F401
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ["fi", "sv", "en"]


# --- Reading the pages ----------------------------------------------------------------------------------------------


def text(fragment: str) -> str:
    """What a fragment of HTML reads as: tags dropped, entities decoded, white space collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", fragment))).strip()


def content(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def booking_for(page: str) -> str:
    match = re.search(r'<div class="booking-for">(.*?)</div>', page, re.S)
    assert match, "the page does not say whom the booking is for"
    return text(match.group(1))


def buttons(page: str) -> list[str]:
    return [text(button) for button in re.findall(r"<button[^>]*>(.*?)</button>", page, re.S)]


def element_ids(page: str) -> set[str]:
    return set(re.findall(r'\sid="([^"]+)"', page))


def error_summary(page: str) -> tuple[str, list[tuple[str, str]]]:
    """The error summary's heading and its links as (target id, text); fails if the page has none."""
    match = re.search(r'<div class="error-summary"[^>]*id="error-summary"[^>]*>(.*?)</div>', page, re.S)
    assert match, "the page has no error summary"
    summary = match.group(1)
    heading = re.search(r'<h2 id="error-summary-title">(.*?)</h2>', summary, re.S)
    assert heading, "the error summary has no heading"
    links = [(target, text(label)) for target, label in re.findall(r'<a href="#([^"]+)">(.*?)</a>', summary, re.S)]
    return text(heading.group(1)), links


def field_errors(page: str) -> dict[str, tuple[str, str]]:
    """Each field error by its element id: (what a screen reader reads, with the hidden prefix; what is seen)."""
    errors = {}
    for error_id, body in re.findall(r'<p class="field__error" id="([^"]+)">(.*?)</p>', page, re.S):
        seen = re.sub(r'<span class="visually-hidden">.*?</span>', "", body, flags=re.S)
        errors[error_id] = (text(body), text(seen))
    return errors


def assert_error_state(page: str, *, fields: list[str]) -> None:
    """The error summary has a heading and links to an element of the page for each field in error, and every
    field error reads as one sentence: no label before it, no colon after other punctuation, no "…: …: …"."""
    heading, links = error_summary(page)
    assert heading
    ids = element_ids(page)
    assert links, "the error summary links to nothing"
    for target, label in links:
        assert target in ids, f"the error summary links to #{target}, which is not on the page"
        assert label
    errors = field_errors(page)
    assert sorted(errors) == sorted(f"id_{name}_error" for name in fields)
    linked = {label for _, label in links}
    for name in fields:
        heard, seen = errors[f"id_{name}_error"]
        assert seen in linked, f"the summary does not list {seen!r}"
        assert any(target.startswith(f"id_{name}") for target, label in links if label == seen)
        assert re.search(rf'aria-describedby="[^"]*\bid_{name}_error\b', page), f"nothing points to {name}'s error"
        assert not re.search(r"[?!.:;,]\s*[:.?!]", heard), f"doubled punctuation in {heard!r}"
        # One colon at most, the hidden "Error:" prefix's: "Error: Label: message" or "Error: …: …" is a list.
        assert heard.count(":") <= 1, f"reads as a list, not a sentence: {heard!r}"
        assert re.search(r"[.!?)]$", seen), f"{seen!r} does not end as a sentence"
        assert seen[0].isupper(), f"{seen!r} does not start as a sentence"


def choose_matter(client, line: ServiceLine, *, language: str = "en", slot_language: str = "fi", interpreter=""):
    return client.post(
        url("bookings:matter", language),
        {
            "service_line": line.pk,
            "language": slot_language,
            "interpreter_needed": "yes" if interpreter else "no",
            "interpreter_language": interpreter,
        },
    )


# --- The matter step: a matter the customer already has a time for --------------------------------------------------


def test_matter__upcoming_time_for_a_matter__marked_with_the_time_and_links_to_view_move_cancel(
    client, partner, customer, line
) -> None:
    other = ServiceLine.objects.create(name_fi="Sairausasiat", name_sv="Sjukdom", name_en="Illness", position=1)
    open_customer(client)
    book(client, line, slot_at(line, days=3, hour=13))
    booking = Booking.objects.get(status=Booking.Status.CONFIRMED)
    page = content(client.get(url("bookings:matter")))
    marked = re.search(rf'<p class="choice__existing" id="existing-{line.pk}">(.*?)</p>', page, re.S)
    assert marked, "the matter with a booked time is not marked"
    local = clock.localnow() + dt.timedelta(days=3)
    assert f"{local.day}.{local.month}.{local.year} at 13:00" in text(marked.group(1))
    for name in ("bookings:done", "bookings:move", "bookings:cancel"):
        assert f'href="{url(name, reference=booking.reference)}"' in marked.group(1)
    assert f'id="existing-{other.pk}"' not in page  # no time for the other matter: nothing to mark
    # Still offered: choosing it gets the rule's error at this step (tests/bookings/test_existing_bookings.py).
    assert f'name="service_line" value="{line.pk}"' in page
    finnish = content(client.get(url("bookings:matter", "fi")))
    marked = text(re.search(rf'id="existing-{line.pk}">(.*?)</p>', finnish, re.S).group(1))
    assert marked.startswith("Asiakkaalla on jo aika tässä asiassa:")
    assert f"{local.day}.{local.month}.{local.year} klo 13" in marked


# --- Whom for, for which organisation, and where in the steps --------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "shown"),
    [(CUSTOMER_CODE, "Asta Asiakas"), (NEW_CODE, "020202A****")],
    ids=["in-register", "not-in-register"],
)
@pytest.mark.parametrize("language", LANGUAGES)
def test_booking_steps__each_says_whom_for_which_organisation_and_which_step(
    client, partner, customer, line, code, shown, language
) -> None:
    step_label = {"fi": "Vaihe {}/4", "sv": "Steg {} av 4", "en": "Step {} of 4"}[language]
    acting = {"fi": "organisaation Helsingin kaupunki puolesta", "sv": "på uppdrag av Helsingin kaupunki"}
    acting = acting.get(language, "acting for Helsingin kaupunki")
    open_customer(client, code)
    slot = slot_at(line)
    steps = {}
    steps[1] = content(client.get(url("bookings:matter", language)))
    choose_matter(client, line, language=language)
    steps[2] = content(client.get(url("bookings:time", language)))
    client.post(url("bookings:time", language), {"slot": slot.pk})
    steps[3] = content(client.get(url("bookings:contact", language)))
    names = {"first_name": "Uusi", "last_name": "Asiakas"} if code == NEW_CODE else {}
    client.post(url("bookings:contact", language), {"phone": "040 123 4567", **names})
    check = client.get(url("bookings:check", language))
    steps[4] = content(check)
    for number, page in steps.items():
        said = booking_for(page)
        assert shown in said, f"step {number} does not say whom the booking is for: {said!r}"
        assert acting in said, f"step {number} does not name the organisation: {said!r}"
        assert step_label.format(number) in said, said
        assert code not in page, f"step {number} shows the whole identity code"
    done = client.get(client.post(url("bookings:check", language), confirm_form(check))["Location"])
    said = booking_for(content(done))
    assert ("Uusi Asiakas" if code == NEW_CODE else shown) in said  # the names typed are the customer's now
    assert acting in said
    assert code not in content(done)


def test_booking_steps__error_pages_too__say_whom_for_and_the_step(client, partner, customer, line) -> None:
    open_customer(client)
    slot_at(line)
    assert "Step 1 of 4" in booking_for(content(client.post(url("bookings:matter"), {})))
    choose_matter(client, line)
    assert "Step 2 of 4" in booking_for(content(client.post(url("bookings:time"), {})))


# --- Buttons that say what they do ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "final_words"),
    [("fi", ("varaa", "vahvista", "valmis")), ("sv", ("boka", "bekräfta", "klar")), ("en", ("book", "confirm"))],
)
def test_buttons__time_step_does_not_read_as_final_the_check_page_confirms(
    client, partner, customer, line, language, final_words
) -> None:
    open_customer(client)
    slot = slot_at(line)
    choose_matter(client, line, language=language)
    time_page = content(client.get(url("bookings:time", language)))
    next_free = re.search(r'<form [^>]*class="next-free">(.*?)</form>', time_page, re.S).group(1)
    week = re.search(r'<section id="slot-list".*?</section>', time_page, re.S).group(0)
    picking = buttons(next_free) + buttons(week)
    assert len(picking) == 2, picking  # the next free time, and the chosen time of the week
    for label in picking:
        assert not any(word in label.lower() for word in final_words), f"{label!r} reads as if it booked the time"
    expected = {"fi": "Jatka", "sv": "Fortsätt", "en": "Continue"}[language]
    assert all(label.startswith(expected) for label in picking), picking
    client.post(url("bookings:time", language), {"slot": slot.pk})
    contact_buttons = buttons(content(client.get(url("bookings:contact", language))))
    assert {"fi": "Jatka varauksen tarkistamiseen", "sv": "Fortsätt och kontrollera bokningen"}.get(
        language, "Continue to check the booking"
    ) in contact_buttons
    client.post(url("bookings:contact", language), {"phone": "040 123 4567"})
    confirm = {"fi": "Vahvista varaus", "sv": "Bekräfta bokningen", "en": "Confirm the booking"}[language]
    assert confirm in buttons(content(client.get(url("bookings:check", language))))


# --- Errors: the summary, what was typed, one sentence ---------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    "typed",
    [
        pytest.param("241170-944X", id="checksum"),
        pytest.param("321170-944V", id="date"),
        pytest.param("hello", id="format"),
        pytest.param("", id="empty"),
    ],
)
def test_customer_step__error__summary_links_to_the_field_typed_code_kept_one_sentence(
    client, partner, language, typed
) -> None:
    page = content(client.post(url("bookings:customer", language), {"identity_code": typed}))
    if typed:
        assert f'value="{typed}"' in page  # kept, in the POST's answer only
    assert_error_state(page, fields=["identity_code"])


@pytest.mark.parametrize("language", LANGUAGES)
def test_matter_step__errors__summary_links_to_the_radios_and_the_choices_are_kept(
    client, partner, customer, line, language
) -> None:
    open_customer(client)
    page = content(client.post(url("bookings:matter", language), {"interpreter_needed": "yes"}))
    assert_error_state(page, fields=["service_line", "language", "interpreter_language"])
    assert re.search(r'<input type="radio" name="interpreter_needed" value="yes"[^>]*checked', page)
    page = content(
        client.post(
            url("bookings:matter", language),
            {"service_line": line.pk, "language": "sv", "interpreter_needed": "yes", "interpreter_language": ""},
        )
    )
    assert_error_state(page, fields=["interpreter_language"])
    assert re.search(rf'<input type="radio" name="service_line" value="{line.pk}"[^>]*checked', page)
    assert re.search(r'<input type="radio" name="language" value="sv"[^>]*checked', page)
    assert re.search(r'<input type="radio" name="interpreter_needed" value="yes"[^>]*checked', page)


@pytest.mark.parametrize("language", LANGUAGES)
def test_contact_step__errors__summary_and_everything_typed_kept(client, partner, line, language) -> None:
    open_customer(client, NEW_CODE)
    client.post(
        url("bookings:matter", language), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"}
    )
    client.post(url("bookings:time", language), {"slot": slot_at(line).pk})
    typed = {"first_name": "", "last_name": "Asiakas", "phone": "123", "email": "not-an-address", "description": "Tuki"}
    page = content(client.post(url("bookings:contact", language), typed))
    assert_error_state(page, fields=["first_name", "phone", "email"])
    assert 'value="Asiakas"' in page
    assert 'value="123"' in page
    assert 'value="not-an-address"' in page
    assert re.search(r">\s*Tuki</textarea>", page)


@pytest.mark.parametrize("language", LANGUAGES)
def test_time_step__no_time_chosen__summary_links_to_the_radios_and_the_week_is_kept(
    client, partner, customer, line, language
) -> None:
    open_customer(client)
    for days in range(1, 15):
        slot_at(line, days=days)
    choose_matter(client, line, language=language)
    first = content(client.get(url("bookings:time", language)))
    following = re.search(r'href="\?week=([0-9-]+)"[^>]*>[^<]*</a>\s*</nav>', first).group(1)
    viewed = content(client.get(url("bookings:time", language), {"week": following}))
    week_heading = re.search(r'<h2 id="week-heading"[^>]*>(.*?)</h2>', viewed, re.S).group(1)
    page = content(client.post(url("bookings:time", language), {"week": following}))
    heading, links = error_summary(page)
    assert heading
    assert len(links) == 1
    target = links[0][0]
    radios = re.findall(r'<input type="radio" name="slot" value="\d+" id="([^"]+)"', page)
    assert radios, "the week's times are not offered again"
    assert target == radios[0], f"the summary links to #{target}, not to the first time of the week"
    assert re.search(r'<h2 id="week-heading"[^>]*>(.*?)</h2>', page, re.S).group(1) == week_heading
    assert f'name="week" value="{following}"' in page
    title = text(re.search(r"<title>(.*?)</title>", page, re.S).group(1))
    assert title.startswith({"fi": "Virhe: ", "sv": "Fel: ", "en": "Error: "}[language]), title


def test_cancel__reason_too_long__summary_and_the_reason_kept(client, partner, customer, line) -> None:
    open_customer(client)
    book(client, line, slot_at(line))
    booking = Booking.objects.get(status=Booking.Status.CONFIRMED)
    page = content(client.post(url("bookings:cancel", reference=booking.reference), {"reason": "x" * 201}))
    assert_error_state(page, fields=["reason"])
    assert 'value="' + "x" * 201 + '"' in page
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED


# --- The customer's bookings: statuses a person understands ----------------------------------------------------------


def _booking(customer, line, reference: str, *, days: int, **fields) -> Booking:
    defaults = {
        "status": Booking.Status.CONFIRMED,
        "confirmed_at": clock.now(),
        "contact_phone": "+358401234567",
        "channel": Booking.Channel.PARTNER,
        "organisation": Organisation.objects.get(),
        "booked_by": UserFactory(),
    }
    return Booking.objects.create(
        reference=reference, slot=slot_at(line, days=days), customer=customer, **defaults | fields
    )


@pytest.fixture
def bookings(customer, line, partner) -> dict[str, Booking]:
    cancelled_at = clock.now() - dt.timedelta(days=1)
    staff = UserFactory(identity_code="", first_name="Kela", last_name="Virkailija", is_staff=True)
    return {
        "upcoming": _booking(customer, line, "UPC-2222", days=4),
        "past": _booking(customer, line, "PST-3333", days=-3),
        "cancelled": _booking(
            customer,
            line,
            "CNC-4444",
            days=5,
            status=Booking.Status.CANCELLED,
            cancelled_at=cancelled_at,
            cancelled_by=partner,
            cancellation_reason="Asiakas hoiti asian verkossa",
        ),
        "cancelled_by_kela": _booking(
            customer, line, "KLA-5555", days=6, status=Booking.Status.CANCELLED, cancelled_at=cancelled_at,
            cancelled_by=staff,
        ),
    }  # fmt: skip


def booking_lines(page: str) -> dict[str, str]:
    found = re.findall(r'<p class="booking-line">(.*?)</p>', page, re.S)
    return {re.search(r"[A-Z2-9]{3}-[A-Z2-9]{4}", line).group(0): line for line in found}


@pytest.mark.parametrize(
    ("language", "labels"),
    [
        ("en", {"upcoming": "Upcoming", "past": "Past", "cancelled": "Cancelled", "confirmed": "Confirmed"}),
        ("fi", {"upcoming": "Tuleva", "past": "Mennyt", "cancelled": "Peruttu", "confirmed": "Vahvistettu"}),
        ("sv", {"upcoming": "Kommande", "past": "Passerad", "cancelled": "Avbokad", "confirmed": "Bekräftad"}),
    ],
)
def test_overview__statuses__upcoming_past_and_cancelled_with_when_and_by_whom(
    client, partner, customer, bookings, language, labels
) -> None:
    open_customer(client)
    page = content(client.get(url("bookings:overview", language)))
    lines = booking_lines(page)
    assert sorted(lines) == sorted(booking.reference for booking in bookings.values())

    def status(reference: str) -> str:
        return text(re.search(r'<span class="status status--\w+">(.*?)</span>', lines[reference]).group(1))

    assert status("UPC-2222") == labels["upcoming"]
    assert status("PST-3333") == labels["past"]  # a past booking is not "Confirmed"
    assert status("CNC-4444") == labels["cancelled"]
    assert labels["confirmed"] not in text(page)
    when = timezone.localtime(bookings["cancelled"].cancelled_at)
    cancelled = text(lines["CNC-4444"])
    assert f"{when.day}.{when.month}.{when.year}" in cancelled
    # Clock times as written in Finland: 9.05 in Finnish and Swedish, 09:05 in English.
    clock_time = when.strftime("%H:%M") if language == "en" else f"{when.hour}.{when.minute:02d}"
    assert clock_time in cancelled
    assert "Helena Virtanen" in cancelled  # by whom
    assert "Asiakas hoiti asian verkossa" in cancelled
    by_kela = text(lines["KLA-5555"])
    assert {"en": "by Kela", "fi": "Kela perui", "sv": "FPA avbokade"}[language] in by_kela
    assert "Virkailija" not in by_kela  # Kela's staff are not named to partners


@pytest.mark.parametrize(
    ("language", "cancel"), [("en", "Cancel the booking"), ("fi", "Peru varaus"), ("sv", "Avboka")]
)
def test_overview_and_matter__cancel_link__says_it_cancels_the_booking(
    client, partner, customer, line, bookings, language, cancel
) -> None:
    """Not the generic "Cancel" (fi "Peruuta", sv "Avbryt"), which reads as abandoning what is on the screen."""
    cancel_url = url("bookings:cancel", language, reference="UPC-2222")
    open_customer(client)
    for name in ("bookings:overview", "bookings:matter"):
        page = content(client.get(url(name, language)))
        label = re.search(rf'href="{cancel_url}">(.*?)<span class="visually-hidden">', page, re.S)
        assert label, name
        assert text(label.group(1)) == cancel, name


def test_overview__each_booking_links_to_its_page__where_it_can_be_moved_or_cancelled_while_upcoming(
    client, partner, customer, bookings
) -> None:
    open_customer(client)
    lines = booking_lines(content(client.get(url("bookings:overview"))))
    for key, booking in bookings.items():
        own = url("bookings:done", reference=booking.reference)
        assert f'href="{own}"' in lines[booking.reference]
        page = content(client.get(own))
        assert booking.reference in text(page)
        assert booking.slot.service_line.name in page
        actions = [url(name, reference=booking.reference) for name in ("bookings:move", "bookings:cancel")]
        if key == "upcoming":
            assert all(f'href="{action}"' in page for action in actions)
        else:
            assert not any(f'href="{action}"' in page for action in actions), key
        if key == "past":
            assert '<span class="status status--past">Past</span>' in page
            assert "Confirmed" not in page


# --- Moving a booking to another time ------------------------------------------------------------------------------


def test_move__through_the_move_page__same_reference_old_time_released_one_message_per_channel_and_audited(
    client, partner, customer, line, django_capture_on_commit_callbacks
) -> None:
    first = slot_at(line, days=2, capacity=1)
    second = slot_at(line, days=3, capacity=1)
    third = slot_at(line, days=4, capacity=1)
    elsewhere = slot_at(line, days=3, hour=14, language="sv")  # another language: not offered
    open_customer(client)
    book(client, line, first, contact={"phone": "040 123 4567", "email": "asta@example.org"})
    booking = Booking.objects.get(status=Booking.Status.CONFIRMED)
    reference = booking.reference
    move_url = url("bookings:move", reference=reference)

    page = content(client.get(move_url))
    offered = set(re.findall(r'name="slot" value="(\d+)"', page))
    assert str(second.pk) in offered
    assert str(first.pk) not in offered  # its own time
    assert str(elsewhere.pk) not in offered
    assert reference in text(page)
    assert "Asta Asiakas" in booking_for(page)

    refused = content(client.post(move_url, {"week": ""}))
    assert_time_error(refused)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(move_url, {"slot": second.pk})
    assert response["Location"] == url("bookings:done", reference=reference)
    done = content(client.get(response["Location"]))
    assert "has a new time" in done
    local = timezone.localtime(second.starts_at)
    assert f"{local.day}.{local.month}.{local.year} {local:%H:%M}" in text(done)

    booking.refresh_from_db()
    assert (booking.reference, booking.slot_id, booking.status) == (reference, second.pk, Booking.Status.CONFIRMED)
    assert Booking.objects.count() == 1
    changes = Message.objects.filter(kind=Booking.MessageKind.CHANGE)
    assert sorted(changes.values_list("channel", "recipient")) == [
        ("email", "asta@example.org"),
        ("sms", "+358401234567"),
    ]
    moved = AuditEvent.objects.get(action=AuditEvent.Action.BOOKING_MOVED)
    assert (moved.booking, moved.customer, moved.actor) == (booking, customer, partner)
    assert moved.details == {"from_slot": first.pk, "to_slot": second.pk}
    # The old time is free again: offered on the next move (capacity 1, so only if released).
    assert f'value="{first.pk}"' in content(client.get(move_url))

    with django_capture_on_commit_callbacks(execute=True):
        client.post(move_url, {"slot": third.pk})
    assert Message.objects.filter(kind=Booking.MessageKind.CHANGE).count() == 4  # each move tells the customer once
    assert AuditEvent.objects.filter(action=AuditEvent.Action.BOOKING_MOVED).count() == 2


def assert_time_error(page: str) -> None:
    heading, links = error_summary(page)
    assert heading
    assert links
    assert links[0][0] in element_ids(page)


def test_move__to_a_time_of_another_matter__refused_and_nothing_changes(client, partner, customer, line) -> None:
    other = ServiceLine.objects.create(name_fi="Sairaus", name_sv="Sjukdom", name_en="Illness")
    open_customer(client)
    book(client, line, slot_at(line))
    booking = Booking.objects.get(status=Booking.Status.CONFIRMED)
    slot_id = booking.slot_id
    page = content(client.post(url("bookings:move", reference=booking.reference), {"slot": slot_at(other).pk}))
    assert_time_error(page)
    assert "cannot be booked" in page
    booking.refresh_from_db()
    assert booking.slot_id == slot_id
    assert not Message.objects.filter(kind=Booking.MessageKind.CHANGE).exists()


# --- The interpreter -----------------------------------------------------------------------------------------------

# The letters after z, in order, in Finnish and Swedish; š and ž sort as s and z.
ALPHABET = {"fi": "abcdefghijklmnopqrstuvwxyzåäö", "sv": "abcdefghijklmnopqrstuvwxyzåäö"}
BASE_LETTER = {"š": "s", "ž": "z", "é": "e", "ü": "y"}


def alphabetical(name: str, language: str) -> list[int]:
    alphabet = ALPHABET[language]
    return [
        alphabet.index(BASE_LETTER.get(char, char)) if BASE_LETTER.get(char, char) in alphabet else -1
        for char in name.casefold()
        if char.isalpha()
    ]


@pytest.mark.parametrize(("language", "arabic"), [("fi", "Arabia"), ("sv", "Arabiska")])
def test_interpreter_languages__named_and_sorted_in_the_page_language(
    client, partner, customer, language, arabic
) -> None:
    open_customer(client)
    page = content(client.get(url("bookings:matter", language)))
    select = re.search(r'<select name="interpreter_language"[^>]*>(.*?)</select>', page, re.S).group(1)
    options = [
        (value, text(name)) for value, name in re.findall(r'<option value="([^"]*)"[^>]*>(.*?)</option>', select)
    ]
    assert options[0][0] == ""  # "Choose a language" first
    names = [name for value, name in options[1:]]
    assert dict(options)["ar"] == arabic
    assert names == sorted(names, key=lambda name: alphabetical(name, language)), names


@pytest.mark.parametrize(
    "language",
    [
        "fi",
        "sv",  # Django's own Swedish catalogue names lt and lv both "Lettiska": bookings/languages.py names lt
        "en",
    ],
)
def test_interpreter_languages__each_name_tells_one_language(client, partner, customer, language) -> None:
    open_customer(client)
    page = content(client.get(url("bookings:matter", language)))
    select = re.search(r'<select name="interpreter_language"[^>]*>(.*?)</select>', page, re.S).group(1)
    names = [text(name) for name in re.findall(r"<option [^>]*>(.*?)</option>", select)]
    assert sorted({name for name in names if names.count(name) > 1}) == []


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_summaries__name_the_interpreter_and_its_language(client, partner, customer, line, language) -> None:
    somali = {"fi": "somali", "sv": "somaliska", "en": "somali"}[language]
    interpreter = {"fi": "tulkki", "sv": "tolk", "en": "interpreter"}[language]
    open_customer(client)
    slot = slot_at(line)
    choose_matter(client, line, language=language, interpreter="so")
    time_page = text(content(client.get(url("bookings:time", language)))).lower()
    assert f"{interpreter}: {somali}" in time_page
    client.post(url("bookings:time", language), {"slot": slot.pk})
    client.post(url("bookings:contact", language), {"phone": "040 123 4567"})
    check = client.get(url("bookings:check", language))
    summary = re.search(r'<dl class="summary">(.*?)</dl>', content(check), re.S).group(1)
    assert re.search(rf"<dt>{interpreter}</dt><dd>{somali}</dd>", summary, re.I), summary
    done = client.get(client.post(url("bookings:check", language), confirm_form(check))["Location"])
    summary = re.search(r'<dl class="summary">(.*?)</dl>', content(done), re.S).group(1)
    assert re.search(rf"<dt>{interpreter}</dt><dd>{somali}</dd>", summary, re.I), summary


# --- The partner appointment's length ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "length", "longer"),
    [
        ("fi", "60 minuutin kumppaniaika", "pidemmän"),
        ("sv", "60 minuters partnertid", "längre"),
        ("en", "60 minute partner appointment", "longer appointment than customers get"),
    ],
)
def test_matter_and_check__show_the_partner_appointments_length(
    client, partner, customer, line, language, length, longer
) -> None:
    line.partner_appointment_minutes = 60
    line.save()
    open_customer(client)
    matter = content(client.get(url("bookings:matter", language)))
    label = re.search(r'<label for="id_service_line_0">(.*?)</label>', matter, re.S).group(1)
    assert length in text(label)
    assert longer in text(matter)
    choose_matter(client, line, language=language)
    client.post(url("bookings:time", language), {"slot": slot_at(line).pk})
    client.post(url("bookings:contact", language), {"phone": "040 123 4567"})
    assert length in text(content(client.get(url("bookings:check", language))))


# --- Notices on the public start page -------------------------------------------------------------------------------


def test_start_page__current_notices_shown_to_anyone_in_the_page_language(client) -> None:
    now = clock.now()
    Notice.objects.create(
        level=Notice.Level.WARNING,
        text_fi="Palvelukatko sunnuntaina klo 8–10.",
        text_sv="Serviceavbrott på söndag kl. 8–10.",
        text_en="Service break on Sunday 8–10.",
        valid_from=now - dt.timedelta(hours=1),
        valid_until=now + dt.timedelta(days=2),
    )
    Notice.objects.create(
        text_fi="Vanha katko",
        text_sv="Gammalt avbrott",
        text_en="Old break",
        valid_from=now - dt.timedelta(days=3),
        valid_until=now - dt.timedelta(days=2),
    )
    Notice.objects.create(
        text_fi="Tuleva katko",
        text_sv="Kommande avbrott",
        text_en="Future break",
        valid_from=now + dt.timedelta(days=1),
        valid_until=now + dt.timedelta(days=2),
    )
    for language, shown, hidden in [
        ("fi", "Palvelukatko sunnuntaina klo 8–10.", ("Vanha katko", "Tuleva katko", "Service break")),
        ("sv", "Serviceavbrott på söndag kl. 8–10.", ("Gammalt avbrott", "Kommande avbrott", "Palvelukatko")),
        ("en", "Service break on Sunday 8–10.", ("Old break", "Future break")),
    ]:
        page = content(client.get(url("start", language)))
        notice = re.search(r'<div class="notice notice--warning" role="status">(.*?)</div>', page, re.S)
        assert notice
        assert text(notice.group(1)) == shown
        assert not any(other in page for other in hidden)


# --- Finnish and Swedish quotation marks ---------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["fi", "sv"])
def test_catalogue__finnish_and_swedish_quotes__no_english_style_opening_marks(language: str) -> None:
    """Finnish and Swedish quote ”like this” (and ’like this’): “, „ and ‘ are English or German."""
    po = polib.pofile(str(ROOT / "locale" / language / "LC_MESSAGES" / "django.po"))
    wrong = []
    for entry in po:
        for translated in [entry.msgstr, *entry.msgstr_plural.values()]:
            if re.search("[\u201c\u201e\u2018\u201a]", translated):
                wrong.append((entry.msgid, translated))
    assert wrong == []
    assert any("\u201d" in entry.msgstr for entry in po)  # the quoted mandate name is there, with ” marks


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_matter__call_language__chosen_by_the_partner_never_taken_from_the_pages(
    client, partner, customer, line, language
):
    """The call's language was pre-chosen as the pages' own: a caseworker on the Swedish pages booked a Swedish call
    for a Finnish-speaking customer unless they noticed."""
    open_customer(client)
    page = content(client.get(url("bookings:matter", language)))
    assert not re.search(r'<input type="radio" name="language" value="[a-z]+"[^>]*checked', page)
    refused = content(client.post(url("bookings:matter", language), {"service_line": "", "interpreter_needed": "no"}))
    assert_error_state(refused, fields=["service_line", "language"])


def test_front_page__signed_in__continues_where_the_partner_was_instead_of_a_second_sign_in(client, partner, customer):
    """The header's link leads to the front page, whose "Log in to book" started a second sign-in that, cancelled,
    ended the partner's session."""
    before = content(client.get(url("start")))
    assert f'href="{url("partners:work")}"' in before
    assert f'href="{url("partners:login")}"' not in before
    open_customer(client)
    after = content(client.get(url("start")))
    assert f'href="{url("bookings:overview")}"' in after
    assert "You are logged in as Helena Virtanen." in after
    client.logout()
    assert f'href="{url("partners:login")}"' in content(client.get(url("start")))


# --- The 404 and 500 pages --------------------------------------------------------------------------------------------


def assert_site_layout(page: str, language: str, *, language_links: bool = True) -> None:
    assert f'<html lang="{language}">' in page
    assert '<a class="skip-link" href="#main">' in page
    assert '<main id="main"' in page
    assert 'class="site-footer"' in page
    assert ('class="language-switcher"' in page) is language_links


@pytest.mark.parametrize(
    ("language", "heading"),
    [("fi", "Sivua ei löydy"), ("sv", "Sidan hittades inte"), ("en", "Page not found")],
)
def test_404__debug_off__friendly_translated_page_in_the_site_layout(client, settings, language, heading) -> None:
    settings.DEBUG = False
    response = client.get(f"/{language}/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert_site_layout(page, language, language_links=False)  # no such page in another language either
    assert f"<h1>{heading}</h1>" in page
    assert f'href="/{language}/"' in page  # a way on: the front page


@pytest.mark.parametrize(
    ("language", "heading"),
    [("fi", "Jokin meni vikaan"), ("sv", "Något gick fel"), ("en", "Something went wrong")],
)
def test_500__debug_off__friendly_translated_page_in_the_site_layout(
    client, settings, partner, customer, monkeypatch, language, heading
) -> None:
    settings.DEBUG = False
    client.raise_request_exception = False  # answer as the server does, not by raising in the test
    open_customer(client)

    def fail(**_kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr("bookings.views.customer_overview", fail)
    response = client.get(url("bookings:overview", language))
    assert response.status_code == 500
    page = response.content.decode()
    assert_site_layout(page, language)
    assert f"<h1>{heading}</h1>" in page
    assert "RuntimeError" not in page
    assert "Traceback" not in page
    assert "the database went away" not in page
