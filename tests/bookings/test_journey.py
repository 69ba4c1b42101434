"""The partner's booking pages through the test client: customer step, overview, book, check, confirm, cancel."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import translation

from bookings.models import Booking, Customer, ServiceLine, Slot
from kelabooking import clock
from kelabooking.models import Message
from partners.models import AuditEvent
from registry.models import Organisation
from tests import drills
from tests.acting import sign_in
from tests.factories import OrganisationFactory, UserFactory
from tests.partners.provider import TEST_CODE

pytestmark = pytest.mark.django_db

CUSTOMER_CODE = "241170-944V"
PROTECTED_CODE = "150580-912S"
NEW_CODE = "020202A977X"


def url(name: str, language: str = "en", **kwargs) -> str:
    with translation.override(language):
        return reverse(name, kwargs=kwargs or None)


@pytest.fixture
def line() -> ServiceLine:
    return ServiceLine.objects.create(name_fi="Asumisen tuet", name_sv="Bostadsstöd", name_en="Housing benefits")


def slot_at(line: ServiceLine, *, days: int = 2, hour: int = 10, capacity: int = 2, language: str = "fi") -> Slot:
    local = clock.localnow().replace(hour=hour, minute=0, second=0, microsecond=0) + dt.timedelta(days=days)
    return Slot.objects.create(
        service_line=line,
        language=language,
        starts_at=local,
        ends_at=local + dt.timedelta(minutes=45),
        capacity=capacity,
    )


@pytest.fixture
def organisation() -> Organisation:
    return OrganisationFactory(business_id="0201256-6", name="Helsingin kaupunki")


@pytest.fixture
def partner(client, organisation):
    user = UserFactory(identity_code=TEST_CODE, first_name="Helena", last_name="Virtanen")
    sign_in(client, user, organisation=organisation)
    return user


@pytest.fixture
def customer() -> Customer:
    return Customer.objects.create(
        identity_code=CUSTOMER_CODE,
        first_name="Asta",
        last_name="Asiakas",
        phone="+358401112222",
        email="asta@example.org",
    )


def open_customer(client, code: str = CUSTOMER_CODE):
    return client.post(url("bookings:customer"), {"identity_code": code})


def book(client, line: ServiceLine, slot: Slot, *, interpreter: str = "", contact: dict | None = None):
    client.post(
        url("bookings:matter"),
        {
            "service_line": line.pk,
            "language": slot.language,
            "interpreter_needed": "yes" if interpreter else "no",
            "interpreter_language": interpreter,
        },
    )
    client.post(url("bookings:time"), {"slot": slot.pk})
    client.post(url("bookings:contact"), contact or {"phone": "040 123 4567", "email": "asta@example.org"})
    check = client.get(url("bookings:check"))
    return client.post(url("bookings:check"), confirm_form(check)), confirm_form(check)["idempotency_key"]


def confirm_form(check) -> dict[str, str]:
    """What the check page's confirm form posts: the hold it shows and its idempotency key."""
    form = drills.confirm_form(check.content.decode())
    assert form is not None, "no confirm form on the check page"
    return form


def test_customer__identity_code__posted_never_in_url_and_locks_the_session(client, partner, customer) -> None:
    assert client.get(url("bookings:customer")).status_code == 200
    response = open_customer(client)
    assert response["Location"] == url("bookings:overview")
    assert CUSTOMER_CODE not in response["Location"]
    # The session now belongs to this customer: the step page goes straight to the overview.
    assert client.get(url("bookings:customer"))["Location"] == url("bookings:overview")


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("241170-944X", "Check the last character"),
        ("321170-944V", "Check the date of birth"),
        ("hello", "in the form 131052-308T"),
        ("<script>x</script>", "in the form 131052-308T"),
        ("", "Enter the customer&#x27;s personal identity code."),
        ("1\u06650385-9013", "in the form 131052-308T"),  # an Arabic-Indic five: the same person, not a second one
        ("１５0385-9013", "in the form 131052-308T"),  # full-width digits
    ],
)
def test_customer__bad_identity_code__translated_error_nothing_saved(client, partner, typed, error) -> None:
    response = open_customer(client, typed)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert "<script>x</script>" not in response.content.decode()
    if typed and typed.isascii() and "<" not in typed:
        # The form keeps what was typed, so that the partner can correct it (in the POST's answer, never a URL).
        assert f'value="{typed}"' in response.content.decode()
    assert not Customer.objects.exists()


def test_customer__temporary_code_when_not_allowed__refused(client, partner, settings) -> None:
    settings.ALLOW_TEST_IDENTITY_CODES = False
    response = open_customer(client)
    assert "Temporary personal identity codes cannot be used" in response.content.decode()


def test_overview__register_customer__contact_shown_and_audited(client, partner, customer) -> None:
    open_customer(client)
    html = client.get(url("bookings:overview")).content.decode()
    assert "Asta Asiakas" in html
    assert "040 1112222" in html
    assert CUSTOMER_CODE not in html
    actions = list(AuditEvent.objects.filter(customer=customer).values_list("action", flat=True))
    assert sorted(actions) == ["contact_details_shown", "customer_opened"]


def test_overview__non_disclosure__no_contact_anywhere_and_nothing_prefilled(client, partner, line) -> None:
    Customer.objects.create(
        identity_code=PROTECTED_CODE,
        first_name="Salla",
        last_name="Suojattu",
        phone="+358409998877",
        email="salainen@example.org",
        non_disclosure=True,
    )
    open_customer(client, PROTECTED_CODE)
    overview = client.get(url("bookings:overview")).content.decode()
    assert "contact details are protected" in overview
    slot = slot_at(line)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": slot.pk})
    contact = client.get(url("bookings:contact")).content.decode()
    for page in (overview, contact):
        assert "+358409998877" not in page
        assert "0409998877" not in page
        assert "salainen@example.org" not in page
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CONTACT_DETAILS_SHOWN).exists()


def test_earlier_step_form__after_the_customer_is_locked__back_at_the_overview_told_why(
    client, partner, customer
) -> None:
    """Choosing the organisation again (its form is still on the work page) while a customer is open was sent back to
    the overview without a word; a plain visit to an earlier step is just taken there."""
    open_customer(client)
    refused = client.post(url("partners:organisation-choose"), follow=True)
    assert refused.redirect_chain == [(url("bookings:overview"), 302)]
    assert "You are already handling another customer." in refused.content.decode()
    visited = client.get(url("bookings:customer"), follow=True)
    assert "You are already handling another customer." not in visited.content.decode()


def test_customer_step__overview_skipped__opening_and_register_contact_on_the_contact_step_still_audited(
    client, partner, customer, line
) -> None:
    """A partner who goes from the customer step straight to booking sees the customer's name and bookings on every
    step, and the register's contact details filled in on the contact step: the opening and that showing are recorded
    as the overview's would be; a posted form shows only what was posted, and records nothing more."""
    open_customer(client)
    slot = slot_at(line)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": slot.pk})

    def actions() -> list[str]:
        return list(AuditEvent.objects.filter(customer=customer).values_list("action", flat=True).order_by("pk"))

    assert actions() == ["customer_opened", "booking_held"]
    contact = client.get(url("bookings:contact")).content.decode()
    assert "asta@example.org" in contact
    assert actions() == ["customer_opened", "booking_held", "contact_details_shown"]
    refused = client.post(url("bookings:contact"), {"phone": "not a phone", "email": ""})
    assert refused.status_code == 200
    assert "asta@example.org" not in refused.content.decode()
    assert actions() == ["customer_opened", "booking_held", "contact_details_shown"]


def test_booking__full_journey__confirmed_with_reference_message_and_audit(
    client, partner, customer, line, django_capture_on_commit_callbacks
) -> None:
    open_customer(client)
    slot = slot_at(line, language="sv")
    with django_capture_on_commit_callbacks(execute=True):
        response, _key = book(client, line, slot, interpreter="ar")
    booking = Booking.objects.get()
    assert response["Location"] == url("bookings:done", reference=booking.reference)
    assert re.fullmatch(r"[A-HJ-NP-Z2-9]{3}-[A-HJ-NP-Z2-9]{4}", booking.reference)
    assert (booking.status, booking.contact_phone, booking.interpreter_language) == ("confirmed", "+358401234567", "ar")
    assert (booking.organisation.business_id, booking.booked_by) == ("0201256-6", partner)
    done = client.get(response["Location"]).content.decode()
    assert booking.reference in done
    assert "Arabic" in done
    assert "A confirmation is sent to the customer's phone as a text message and to their e-mail." in done
    move = client.get(url("bookings:move", reference=booking.reference)).content.decode()
    assert "interpreter: Arabic" in move  # the time step said so; the move's says so too
    assert sorted(Message.objects.values_list("channel", "language")) == [("email", "sv"), ("sms", "sv")]
    assert [sent.to for sent in mail.outbox] == [["asta@example.org"]]
    assert booking.reference in mail.outbox[0].subject
    actions = list(AuditEvent.objects.filter(customer=customer).values_list("action", flat=True).order_by("pk"))
    # The confirmation showed the contact details typed for the booking: recorded with the booking.
    assert actions[-3:] == ["booking_held", "booking_confirmed", "contact_details_shown"]
    assert AuditEvent.objects.get(action="booking_held").details == {"reference": booking.reference, "slot": slot.pk}
    assert AuditEvent.objects.get(action="booking_confirmed").booking == booking
    assert AuditEvent.objects.get(action="contact_details_shown").booking == booking
    overview = client.get(url("bookings:overview")).content.decode()
    assert booking.reference in overview
    assert "Booked by Helsingin kaupunki" in overview


def test_booking__double_submit__one_booking(client, partner, customer, line) -> None:
    open_customer(client)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": slot_at(line).pk})
    client.post(url("bookings:contact"), {"phone": "040 123 4567"})
    form = confirm_form(client.get(url("bookings:check")))
    response = client.post(url("bookings:check"), form)
    again = client.post(url("bookings:check"), form)
    assert again["Location"] == response["Location"]
    assert Booking.objects.count() == 1


def test_booking__customer_not_in_register__names_required_then_saved(client, partner, line) -> None:
    open_customer(client, NEW_CODE)
    slot = slot_at(line)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": slot.pk})
    refused = client.post(url("bookings:contact"), {"phone": "040 123 4567"})
    assert refused.status_code == 200
    assert 'id="id_first_name_error"' in refused.content.decode()
    book(client, line, slot, contact={"phone": "040 123 4567", "first_name": "Uusi", "last_name": "Asiakas"})
    customer = Customer.objects.with_identity_code(NEW_CODE).get()
    assert (customer.first_name, customer.last_name, customer.source) == ("Uusi", "Asiakas", "entered_by_partner")


def test_booking__customer_not_in_register__another_organisation_sees_keeps_or_corrects_the_names(
    client, partner, line
) -> None:
    """The names of a customer Kela's register does not know are the customer's, shown to every organisation. A second
    organisation's partner had to type them again (the form empty), its check page showed the first one's typing while
    the confirm saved its own, and nothing recorded the overwrite. Now the form offers the names given before, the
    check page shows what the confirm saves, and the confirm's event says the names were given or changed."""
    open_customer(client, NEW_CODE)
    book(
        client,
        line,
        slot_at(line, hour=9),
        contact={"phone": "040 123 4567", "first_name": "Uusi", "last_name": "Asiakas"},
    )
    first = AuditEvent.objects.get(action=AuditEvent.Action.BOOKING_CONFIRMED)
    assert first.details == {"customer_names": "entered"}
    tampere = OrganisationFactory(business_id="0211675-2", name="Tampereen kaupunki")
    other = UserFactory(identity_code="010170-960F", first_name="Tiina", last_name="Tampere")
    sign_in(client, other, organisation=tampere)
    open_customer(client, NEW_CODE)
    other_line = ServiceLine.objects.create(name_fi="Eläkkeet", name_sv="Pensioner", name_en="Pensions")
    client.post(url("bookings:matter"), {"service_line": other_line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": slot_at(other_line, hour=13).pk})

    form = client.get(url("bookings:contact")).content.decode()
    client.post(
        url("bookings:contact"), {"phone": "040 765 4321", "first_name": "Uusi", "last_name": "Asiakas-Korjattu"}
    )
    check = client.get(url("bookings:check"))
    client.post(url("bookings:check"), confirm_form(check))

    assert 'value="Uusi"' in form
    assert 'value="Asiakas"' in form
    assert "Uusi Asiakas-Korjattu" in check.content.decode()
    customer = Customer.objects.with_identity_code(NEW_CODE).get()
    assert (customer.first_name, customer.last_name) == ("Uusi", "Asiakas-Korjattu")
    second = AuditEvent.objects.filter(action=AuditEvent.Action.BOOKING_CONFIRMED).exclude(pk=first.pk).get()
    assert (second.actor, second.details) == (other, {"customer_names": "changed"})


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("phone", "", "Give the telephone number Kela calls."),
        ("phone", "123", "does not exist"),
        ("phone", "call me", "Enter a telephone number"),
        ("email", "not-an-address", "valid email address"),
        ("description", "x" * 501, "at most 500 characters"),
    ],
)
def test_booking__bad_contact__field_error_and_nothing_confirmed(client, partner, customer, line, field, value, error):
    open_customer(client)
    slot = slot_at(line)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": slot.pk})
    data = {"phone": "040 123 4567", "email": "", "description": "", field: value}
    response = client.post(url("bookings:contact"), data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Booking.objects.filter(status=Booking.Status.CONFIRMED).exists()


@pytest.mark.parametrize(
    "data",
    [
        {"service_line": "999999", "language": "fi", "interpreter_needed": "no"},
        {"service_line": "abc", "language": "fi", "interpreter_needed": "no"},
        {"language": "de", "interpreter_needed": "no"},
        {"language": "fi", "interpreter_needed": "yes"},
        {"language": "fi", "interpreter_needed": "yes", "interpreter_language": "klingon"},
    ],
)
def test_booking__bad_matter__field_error(client, partner, customer, line, data) -> None:
    open_customer(client)
    response = client.post(url("bookings:matter"), {"service_line": line.pk, **data})
    assert response.status_code == 200
    assert "error-summary" in response.content.decode()


@pytest.mark.parametrize("slot_value", ["", "abc", "-1", "999999", "1; DROP TABLE"])
def test_booking__tampered_or_foreign_slot__error_and_no_hold(client, partner, customer, line, slot_value) -> None:
    open_customer(client)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    response = client.post(url("bookings:time"), {"slot": slot_value})
    assert response.status_code == 200
    assert "error-summary" in response.content.decode()
    assert not Booking.objects.exists()


def test_booking__past_slot__refused(client, partner, customer, line) -> None:
    open_customer(client)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    past = slot_at(line, days=-1)
    response = client.post(url("bookings:time"), {"slot": past.pk})
    assert "cannot be booked" in response.content.decode()
    assert not Booking.objects.exists()


def test_booking__expired_hold_slot_taken__nearest_times_and_typed_contact_kept(client, partner, customer, line):
    open_customer(client)
    slot = slot_at(line, capacity=1)
    later = slot_at(line, hour=13)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    client.post(url("bookings:time"), {"slot": slot.pk})
    client.post(url("bookings:contact"), {"phone": "040 765 4321", "description": "Asumistuki"})
    form = confirm_form(client.get(url("bookings:check")))
    with time_machine.travel(clock.now() + dt.timedelta(minutes=11), tick=False):
        other = Customer.objects.create(identity_code="110390Y933U")
        other_partner = UserFactory(identity_code="131052-930V")
        Booking.objects.create(
            reference="ZZZ-ZZZZ",
            slot=slot,
            customer=other,
            status=Booking.Status.HELD,
            hold_expires_at=clock.now() + dt.timedelta(minutes=10),
            organisation=Organisation.objects.get(),
            booked_by=other_partner,
        )
        response = client.post(url("bookings:check"), form)
        assert response.status_code == 200
        html = response.content.decode()
        assert "just taken" in html
        assert f'value="{later.pk}"' in html  # the nearest free time is offered
        assert not Booking.objects.filter(
            customer__in=Customer.objects.with_identity_code(CUSTOMER_CODE), status="confirmed"
        ).exists()
        client.post(url("bookings:time"), {"slot": later.pk})
        contact = client.get(url("bookings:contact")).content.decode()
    assert 'value="040 7654321"' in contact  # what was typed is still there, as numbers are shown
    assert "Asumistuki" in contact


def test_booking__second_booking_same_line__refused_at_the_matter_step(client, partner, customer, line) -> None:
    """At once, not after the contact details (tests/bookings/test_existing_bookings.py has the rest)."""
    open_customer(client)
    book(client, line, slot_at(line))
    slot_at(line, days=3)
    chosen = {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"}
    matter = client.post(url("bookings:matter"), chosen)
    assert matter.status_code == 200
    assert "already has a booked time for this matter" in matter.content.decode()
    assert client.get(url("bookings:time"))["Location"] == url("bookings:matter")
    assert Booking.objects.filter(status=Booking.Status.CONFIRMED).count() == 1


def test_cancel__confirm_step_then_cancelled_capacity_freed_and_audited(
    client, partner, customer, line, django_capture_on_commit_callbacks
) -> None:
    open_customer(client)
    response, _ = book(client, line, slot_at(line))
    booking = Booking.objects.get()
    cancel_url = url("bookings:cancel", reference=booking.reference)
    assert booking.reference in client.get(cancel_url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(cancel_url, {"reason": "Asiakas hoiti asian verkossa"})
    assert response["Location"] == url("bookings:overview")
    booking.refresh_from_db()
    assert (booking.status, booking.cancelled_by, booking.cancellation_reason) == (
        "cancelled",
        partner,
        "Asiakas hoiti asian verkossa",
    )
    assert Message.objects.filter(kind=Booking.MessageKind.CANCELLATION, recipient="asta@example.org").count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.BOOKING_CANCELLED, booking=booking).exists()


def test_cancel__audit_event_fails__booking_stays_confirmed_and_no_message(
    client, partner, customer, line, monkeypatch
) -> None:
    open_customer(client)
    book(client, line, slot_at(line))
    booking = Booking.objects.get()
    messages_before = Message.objects.count()

    def refuse(**_kwargs):
        raise RuntimeError("the audit trail could not be written")

    monkeypatch.setattr("bookings.services.booking.audit_event_record", refuse)
    with pytest.raises(RuntimeError):
        client.post(url("bookings:cancel", reference=booking.reference), {"reason": ""})

    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED
    assert Message.objects.count() == messages_before


def test_cancel__another_customers_booking__404_whatever_the_reference(client, partner, customer, line) -> None:
    other = Customer.objects.create(identity_code="110390Y933U")
    booking = Booking.objects.create(
        reference="ABC-DEFG",
        slot=slot_at(line),
        customer=other,
        status=Booking.Status.CONFIRMED,
        confirmed_at=clock.now(),
        contact_phone="+358401234567",
        channel=Booking.Channel.KELA_PHONE_SERVICE,
    )
    open_customer(client)
    for name in ("bookings:cancel", "bookings:done"):
        assert client.get(url(name, reference=booking.reference)).status_code == 404
        assert client.post(url(name, reference=booking.reference), {"reason": "x"}).status_code in (404, 405)
    assert client.get(url("bookings:cancel", reference="NOT-EXIST")).status_code == 404
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED


def test_time_picker__htmx_week__partial_and_bounded_queries(
    client, partner, customer, line, django_assert_max_num_queries
):
    open_customer(client)
    client.post(url("bookings:matter"), {"service_line": line.pk, "language": "fi", "interpreter_needed": "no"})
    for day in range(1, 12):
        slot_at(line, days=day, hour=9)
        slot_at(line, days=day, hour=11)
    page = client.get(url("bookings:time"))
    assert "Continue with the next free time" in page.content.decode()
    next_week = re.search(r'hx-get="\?week=([0-9-]+)"', page.content.decode().split("Next week")[0].rsplit("<a", 1)[1])
    with django_assert_max_num_queries(9):
        partial = client.get(url("bookings:time") + f"?week={next_week.group(1)}", HTTP_HX_REQUEST="true")
    html = partial.content.decode()
    assert html.lstrip().startswith('<section id="slot-list"')
    assert "<html" not in html
    assert 'type="radio" name="slot"' in html
    assert 'id="week-heading" tabindex="-1" autofocus' in html  # htmx focuses it once swapped in
    # The browser's back button: htmx asks for the page at that address again, and gets the whole page.
    restored = client.get(
        url("bookings:time") + f"?week={next_week.group(1)}",
        HTTP_HX_REQUEST="true",
        HTTP_HX_HISTORY_RESTORE_REQUEST="true",
    )
    assert "<html" in restored.content.decode()
    assert "autofocus" not in restored.content.decode()
    assert "HX-History-Restore-Request" in partial["Vary"]


def _history(customer: Customer, line: ServiceLine, count: int, *, first_day: int, prefix: str) -> None:
    """Past bookings made by a partner, online and by phone, some cancelled."""
    organisation = Organisation.objects.get()
    channels = [Booking.Channel.PARTNER, Booking.Channel.CUSTOMER_ONLINE, Booking.Channel.KELA_PHONE_SERVICE]
    for index in range(count):
        channel = channels[index % 3]
        cancelled = index % 2 == 1
        Booking.objects.create(
            reference=f"{prefix}{index:02d}-AAAA",
            slot=slot_at(line, days=-(first_day + index), hour=9),
            customer=customer,
            status=Booking.Status.CANCELLED if cancelled else Booking.Status.CONFIRMED,
            confirmed_at=None if cancelled else clock.now(),
            cancelled_at=clock.now() if cancelled else None,
            contact_phone="" if cancelled else "+358401234567",
            channel=channel,
            organisation=organisation if channel == Booking.Channel.PARTNER else None,
            booked_by=UserFactory() if channel == Booking.Channel.PARTNER else None,
        )


def test_overview__query_count__independent_of_the_number_of_bookings(
    client, partner, customer, line, django_assert_max_num_queries, django_assert_num_queries
) -> None:
    open_customer(client)
    _history(customer, line, 2, first_day=1, prefix="H")
    client.get(url("bookings:overview"))  # warm the session
    with django_assert_max_num_queries(10) as few:
        assert client.get(url("bookings:overview")).status_code == 200
    _history(customer, line, 40, first_day=10, prefix="M")
    with django_assert_num_queries(len(few)):
        html = client.get(url("bookings:overview")).content.decode()
    assert html.count('class="booking-line"') == 20  # one page of the 42


def test_overview__long_history__pages_of_twenty_newest_first_with_older_and_newer_links(
    client, partner, customer, line
) -> None:
    open_customer(client)
    _history(customer, line, 45, first_day=1, prefix="P")  # P00 is the newest (yesterday), P44 the oldest
    upcoming = upcoming_booking(customer, line)

    def page(query: str = "") -> tuple[str, list[str]]:
        html = client.get(url("bookings:overview") + query).content.decode()
        history = html.split('id="history-heading"')[1]
        return history, list(dict.fromkeys(re.findall(r"P(\d\d)-AAAA", history)))  # each line names it twice

    first, shown = page()
    assert shown == [f"{index:02d}" for index in range(20)]
    assert "Bookings 1–20, newest first." in first
    assert '?page=2#history-heading">Older bookings' in first
    assert "Newer bookings" not in first
    second, shown = page("?page=2")
    assert shown == [f"{index:02d}" for index in range(20, 40)]
    assert '?page=1#history-heading">Newer bookings' in second
    assert '?page=3#history-heading">Older bookings' in second
    last, shown = page("?page=3")
    assert shown == [f"{index:02d}" for index in range(40, 45)]
    assert "Bookings 41–45, newest first." in last
    assert "Older bookings" not in last
    # The upcoming booking is on every page, above the history.
    for query in ("", "?page=2", "?page=3"):
        assert upcoming.reference in client.get(url("bookings:overview") + query).content.decode()
    # Past the end, or nonsense: never an error.
    beyond, shown = page("?page=9")
    assert shown == []
    assert "Back to the newest bookings" in beyond
    for nonsense in ("?page=0", "?page=-1", "?page=abc", "?page=" + "9" * 40, "?page=%D9%A5"):
        response = client.get(url("bookings:overview") + nonsense)
        assert response.status_code == 200


def upcoming_booking(customer: Customer, line: ServiceLine) -> Booking:
    return Booking.objects.create(
        reference="UPC-2345",
        slot=slot_at(line, days=3, hour=9),
        customer=customer,
        status=Booking.Status.CONFIRMED,
        confirmed_at=clock.now(),
        contact_phone="+358401234567",
        channel=Booking.Channel.CUSTOMER_ONLINE,
    )
