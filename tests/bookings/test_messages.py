"""What the customer is told: an SMS and an e-mail with a calendar entry, in the service language; reminders."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from zoneinfo import ZoneInfo

import icalendar
import pytest
import time_machine
from celery.schedules import crontab
from django.conf import settings
from django.core import mail
from django.urls import reverse
from django.utils import translation
from pytest_httpserver import HTTPServer

from bookings.messages import SMS_MAX_LENGTH, booking_messages_enqueue
from bookings.models import Booking, Customer
from bookings.services import booking_cancel, booking_confirm, booking_hold, bookings_remind
from bookings.services.booking import ContactDetails
from bookings.tasks import remind_bookings_task
from kelabooking import clock
from kelabooking.delivery import message_render, message_send
from kelabooking.models import Message
from kelabooking.services import message_enqueue
from kelabooking.sms import LocmemBackend
from tests.factories import (
    BookingFactory,
    CustomerFactory,
    OrganisationFactory,
    PartnerFactory,
    ServiceLineFactory,
    SlotFactory,
    acting_for,
    acting_for_hold,
)

pytestmark = pytest.mark.django_db

HELSINKI = ZoneInfo("Europe/Helsinki")
PHONE = "+358401234567"
EMAIL = "aino@example.org"
TEXT_FIELDS = ("recipient", "subject", "body", "body_html", "calendar")
CLOSED_PORT = 9  # discard: nothing listens there on the test machine


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=HELSINKI)


# Monday 30 March 2026, the day after the change to summer time; booked ten days ahead.
CALL_AT = local(2026, 3, 30, 9)
BOOKED_AT = local(2026, 3, 20, 12)


@pytest.fixture
def traveller():
    with time_machine.travel(BOOKED_AT, tick=False) as traveller:
        yield traveller


def book(
    *,
    language: str = "fi",
    starts_at: dt.datetime = CALL_AT,
    customer: Customer | None = None,
    email: str = EMAIL,
    phone: str = PHONE,
    interpreter_language: str = "",
) -> Booking:
    """A partner holds and confirms a time, through the services, with the contact details typed for this booking."""
    slot = SlotFactory(language=language, starts_at=starts_at, service_line=ServiceLineFactory(name_fi="Asumistuki"))
    acting = acting_for(PartnerFactory(), organisation=OrganisationFactory(), customer=customer or CustomerFactory())
    held = booking_hold(acting=acting, slot_id=slot.pk)
    return booking_confirm(
        acting=acting,
        hold_id=held.pk,
        contact=ContactDetails(phone=phone, email=email, interpreter_language=interpreter_language),
        idempotency_key=uuid.uuid4(),
    )


def messages_of(booking: Booking, kind: str) -> dict[str, Message]:
    """The booking's queued messages of `kind`, with the texts the worker writes before it sends them."""
    return {
        message.channel: message_render(message)
        for message in Message.objects.filter(key__startswith=f"booking:{booking.pk}:{kind}:")
    }


def all_text() -> str:
    messages = [message_render(message) for message in Message.objects.all()]
    return "\n".join(str(getattr(message, field)) for message in messages for field in TEXT_FIELDS)


def parse(calendar: str) -> tuple[icalendar.Calendar, icalendar.Event]:
    parsed = icalendar.Calendar.from_ical(calendar)
    [event] = parsed.walk("VEVENT")
    return parsed, event


# --- what is sent on confirmation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "date", "window", "interpreter", "reference_label", "cancel_through"),
    [
        ("fi", "maanantai 30.3.2026", "klo 9.00", "arabia", "Varaustunnus", "Kelan puhelinpalvelu"),
        ("sv", "måndag 30 mars 2026", "kl. 9.00", "Arabiska", "Bokningsnummer", "FPA:s telefontjänst"),
        ("en", "Monday 30 March 2026", "at 09:00", "Arabic", "Reference", "Kela's telephone service"),
    ],
)
def test_booking__confirm__queues_sms_and_email_in_service_language(
    traveller, language, date, window, interpreter, reference_label, cancel_through
) -> None:
    caller_note = {"fi": settings.KELA_CALLER_NOTE_FI, "sv": settings.KELA_CALLER_NOTE_SV}.get(
        language, settings.KELA_CALLER_NOTE_EN
    )
    with translation.override("sv" if language == "fi" else "fi"):  # the partner's page language does not matter
        booking = book(language=language, interpreter_language="ar")

    sent = messages_of(booking, Booking.MessageKind.CONFIRMATION)
    assert set(sent) == {Message.Channel.SMS, Message.Channel.EMAIL}
    sms, email = sent[Message.Channel.SMS], sent[Message.Channel.EMAIL]
    assert (sms.recipient, email.recipient) == (PHONE, EMAIL)
    assert sms.language == email.language == language
    assert sms.key == f"booking:{booking.pk}:confirmation:sms"
    assert email.key == f"booking:{booking.pk}:confirmation:email"
    for text in (sms.body, email.body, email.body_html):
        assert f"{reference_label}: " in text or f"{reference_label}</dt>" in text
        for expected in (booking.reference, date, window, interpreter, caller_note, cancel_through):
            assert expected in text, (expected, text)
    assert booking.reference in email.subject
    assert date in email.subject
    assert len(sms.body) <= SMS_MAX_LENGTH
    assert (sms.subject, sms.body_html, sms.calendar) == ("", "", "")
    assert f'<html lang="{language}">' in email.body_html
    assert email.calendar.startswith("BEGIN:VCALENDAR")


def test_booking__confirm__without_interpreter__names_no_interpreter(traveller) -> None:
    booking = book(language="en")

    for message in messages_of(booking, Booking.MessageKind.CONFIRMATION).values():
        assert "Interpreter" not in message.body


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
@pytest.mark.parametrize(
    "kind", [Booking.MessageKind.CONFIRMATION, Booking.MessageKind.REMINDER, Booking.MessageKind.CANCELLATION]
)
def test_booking_messages__longest_sms__fits_320_characters(traveller, language, kind) -> None:
    # A Wednesday in September, two-digit hours, and the longest interpreter language name in each language.
    longest = {"fi": "ckb", "sv": "zh", "en": "ckb"}[language]
    booking = BookingFactory.confirmed(
        slot=SlotFactory(language=language, starts_at=local(2026, 9, 30, 10, 15)),
        contact_email=EMAIL,
        interpreter_needed=True,
        interpreter_language=longest,
    )

    booking_messages_enqueue(booking=booking, kind=kind)

    sms = message_render(Message.objects.get(channel=Message.Channel.SMS))
    assert booking.reference in sms.body
    assert len(sms.body) <= SMS_MAX_LENGTH, len(sms.body)


def test_booking__confirm__without_email__queues_the_sms_only(traveller) -> None:
    booking = book(email="")

    assert list(Message.objects.values_list("key", "recipient")) == [(f"booking:{booking.pk}:confirmation:sms", PHONE)]


def test_booking_messages__non_disclosure_customer__only_the_typed_contact_details(traveller) -> None:
    customer = CustomerFactory.non_disclosure(
        first_name="Salli", last_name="Salainen", phone="+358509876543", email="salainen@example.org"
    )
    booking = book(customer=customer, phone="+358401112223", email="annettu@example.org")
    booking_cancel(acting=acting_for_hold(booking), booking_id=booking.pk)

    assert set(Message.objects.values_list("recipient", flat=True)) == {"+358401112223", "annettu@example.org"}
    text = all_text()
    for register_value in ("+358509876543", "050 9876543", "0509876543", "salainen@example.org", "Salli", "Salainen"):
        assert register_value not in text


def test_booking_messages__never_contain_an_identity_code(traveller) -> None:
    booking = book(interpreter_language="so")
    traveller.move_to(local(2026, 3, 29, 10))
    assert bookings_remind() == 1
    booking_cancel(acting=acting_for_hold(booking), booking_id=booking.pk)

    assert Message.objects.count() == 6
    text = all_text()
    assert booking.customer.identity_code not in text
    assert booking.booked_by.identity_code not in text


# --- the calendar entry ---------------------------------------------------------------------------------------------


def test_booking__calendar__same_event_requested_then_cancelled(traveller) -> None:
    booking = book(language="fi")
    booking_cancel(acting=acting_for_hold(booking), booking_id=booking.pk)

    confirmation, confirmed_event = parse(messages_of(booking, "confirmation")["email"].calendar)
    cancellation, cancelled_event = parse(messages_of(booking, "cancellation")["email"].calendar)

    assert (str(confirmation["METHOD"]), str(cancellation["METHOD"])) == ("REQUEST", "CANCEL")
    assert str(confirmed_event["UID"]) == str(cancelled_event["UID"]) == f"{booking.reference}@kelabooking"
    assert (confirmed_event["SEQUENCE"], cancelled_event["SEQUENCE"]) == (0, 1)
    assert (str(confirmed_event["STATUS"]), str(cancelled_event["STATUS"])) == ("CONFIRMED", "CANCELLED")
    assert str(confirmed_event["SUMMARY"]) == "Puhelinaika Kelaan"
    assert booking.reference in str(confirmed_event["DESCRIPTION"])


@pytest.mark.parametrize("kind", [Booking.MessageKind.CONFIRMATION, Booking.MessageKind.CANCELLATION])
def test_booking__calendar__local_times_with_helsinki_timezone(traveller, kind) -> None:
    booking = book(language="sv")
    booking_cancel(acting=acting_for_hold(booking), booking_id=booking.pk)

    raw = messages_of(booking, kind)["email"].calendar
    calendar, event = parse(raw)

    assert [str(timezone["TZID"]) for timezone in calendar.walk("VTIMEZONE")] == ["Europe/Helsinki"]
    assert event["DTSTART"].params["TZID"] == "Europe/Helsinki"
    assert "DTSTART;TZID=Europe/Helsinki:20260330T090000" in raw
    assert "DTEND;TZID=Europe/Helsinki:20260330T094500" in raw
    assert event.decoded("DTSTART") == CALL_AT
    assert event.decoded("DTSTART").utcoffset() == dt.timedelta(hours=3)  # summer time, the day after the change
    assert event.decoded("DTEND") - event.decoded("DTSTART") == dt.timedelta(minutes=45)


def test_booking__confirm__email_is_sent_with_html_alternative_and_calendar(
    traveller, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        booking = book(language="fi")
    with django_capture_on_commit_callbacks(execute=True):
        booking_cancel(acting=acting_for_hold(booking), booking_id=booking.pk)

    assert [sms["to"] for sms in LocmemBackend.outbox] == [PHONE, PHONE]
    assert [email.to for email in mail.outbox] == [[EMAIL], [EMAIL]]
    for email, method in zip(mail.outbox, ["REQUEST", "CANCEL"], strict=True):
        assert booking.reference in email.subject
        [(html, mimetype)] = email.alternatives
        assert mimetype == "text/html"
        assert '<html lang="fi">' in html
        [(filename, calendar, attachment_type)] = email.attachments
        assert filename == "kela.ics"
        assert attachment_type.startswith(f"text/calendar; method={method}")
        assert f"METHOD:{method}" in calendar
        parts = {part.get_content_type(): part for part in email.message().walk()}
        assert {"text/plain", "text/html", "text/calendar"} <= set(parts)
        assert parts["text/calendar"].get_param("method") == method
        assert parts["text/calendar"]["Content-Type"].count("charset=") == 1
        assert parts["text/calendar"].get_filename() == "kela.ics"
    assert set(Message.objects.values_list("status", flat=True)) == {Message.Status.SENT}


def test_booking_messages__queued_without_texts__sender_writes_them_once(traveller, smtp_sink, settings) -> None:
    """The booking's request queues who and what for; the worker writes the texts before its first attempt and
    keeps them, so a retry sends what the first attempt tried to send."""
    booking = book(language="sv")
    queued = Message.objects.filter(key__startswith=f"booking:{booking.pk}:")
    assert {(message.channel, message.body, message.calendar) for message in queued} == {
        (Message.Channel.SMS, "", ""),
        (Message.Channel.EMAIL, "", ""),
    }
    assert {message.context["booking"] for message in queued} == {booking.pk}
    email = queued.get(channel=Message.Channel.EMAIL)

    settings.EMAIL_PORT = CLOSED_PORT  # the relay is down at the first attempt
    first = message_send(message_id=email.pk)
    assert first.retry_in is not None
    email.refresh_from_db()
    assert booking.reference in email.subject
    assert "DTSTAMP:20260320T100000Z" in email.calendar  # written at the first attempt, 12.00 in Helsinki
    written = {field: getattr(email, field) for field in TEXT_FIELDS}

    traveller.shift(dt.timedelta(seconds=first.retry_in + 60))
    settings.EMAIL_PORT = smtp_sink.port
    assert message_send(message_id=email.pk).sent is True
    email.refresh_from_db()
    assert {field: getattr(email, field) for field in TEXT_FIELDS} == written
    [delivered] = smtp_sink.messages
    assert str(delivered["Subject"]).strip() == written["subject"]
    calendar = next(part for part in delivered.walk() if part.get_content_type() == "text/calendar")
    assert calendar.get_content().replace("\r\n", "\n") == written["calendar"].replace("\r\n", "\n")


def test_booking_message__booking_gone__fails_with_the_reason(traveller, settings) -> None:
    settings.MESSAGE_MAX_ATTEMPTS = 1
    booking = book(email="")
    sms = Message.objects.get(channel=Message.Channel.SMS)
    # A booking with an audit event cannot be deleted (the trail protects it): a message naming one that is gone.
    Message.objects.filter(pk=sms.pk).update(context={"booking": booking.pk + 10_000})

    assert message_send(message_id=sms.pk).sent is False

    sms.refresh_from_db()
    assert sms.status == Message.Status.FAILED
    assert "does not exist" in sms.last_error
    assert LocmemBackend.outbox == []


# --- reminders ------------------------------------------------------------------------------------------------------


def confirmed_at(starts_at: dt.datetime, **fields) -> Booking:
    return BookingFactory.confirmed(slot=SlotFactory(starts_at=starts_at), contact_email=EMAIL, **fields)


def reminded() -> set[str]:
    return set(Booking.objects.filter(reminded_at__isnull=False).values_list("reference", flat=True))


@pytest.mark.parametrize(
    "now",
    [local(2026, 3, 29, 8), local(2026, 3, 29, 10), local(2026, 3, 29, 19, 59)],
    ids=["08:00", "10:00", "19:59"],
)
def test_bookings__remind__reminds_tomorrows_booking_inside_send_hours(now) -> None:
    with time_machine.travel(BOOKED_AT, tick=False):
        booking = confirmed_at(CALL_AT, interpreter_needed=True, interpreter_language="ar")

    with time_machine.travel(now, tick=False):
        assert bookings_remind() == 1

    booking.refresh_from_db()
    assert booking.reminded_at == now
    sent = messages_of(booking, Booking.MessageKind.REMINDER)
    assert {channel: message.recipient for channel, message in sent.items()} == {"sms": PHONE, "email": EMAIL}
    assert "Muistutus" in sent["sms"].body
    assert "maanantai 30.3.2026 klo 9.00-9.45" in sent["sms"].body
    assert "arabia" in sent["sms"].body
    assert str(parse(sent["email"].calendar)[0]["METHOD"]) == "REQUEST"


@pytest.mark.parametrize("now", [local(2026, 3, 29, 7, 30), local(2026, 3, 29, 20), local(2026, 3, 29, 20, 30)])
def test_bookings__remind__outside_send_hours__sends_nothing(now) -> None:
    with time_machine.travel(BOOKED_AT, tick=False):
        confirmed_at(CALL_AT)

    with time_machine.travel(now, tick=False):
        assert bookings_remind() == 0

    assert reminded() == set()
    assert not Message.objects.exists()


def test_bookings__remind__second_run__sends_nothing_new() -> None:
    with time_machine.travel(BOOKED_AT, tick=False):
        confirmed_at(CALL_AT)

    with time_machine.travel(local(2026, 3, 29, 10), tick=False) as traveller:
        assert bookings_remind() == 1
        traveller.shift(dt.timedelta(minutes=10))
        assert bookings_remind() == 0

    assert Message.objects.count() == 2


def test_bookings__remind__cancelled_or_held_booking__is_never_reminded() -> None:
    with time_machine.travel(BOOKED_AT, tick=False):
        cancelled = confirmed_at(CALL_AT)
        booking_cancel(acting=acting_for_hold(cancelled), booking_id=cancelled.pk)
        BookingFactory.held(slot=SlotFactory(starts_at=CALL_AT), expires_at=local(2026, 3, 31, 12))

    with time_machine.travel(local(2026, 3, 29, 10), tick=False):
        assert bookings_remind() == 0

    assert not Message.objects.filter(kind=Booking.MessageKind.REMINDER).exists()


def test_bookings__remind__only_the_next_day(traveller) -> None:
    confirmed_at(local(2026, 3, 29, 15))  # today
    tomorrow = confirmed_at(CALL_AT)
    confirmed_at(local(2026, 3, 31, 9))  # the day after tomorrow

    traveller.move_to(local(2026, 3, 29, 10))
    assert bookings_remind() == 1

    assert reminded() == {tomorrow.reference}


def test_bookings__remind__the_day_after_the_change_to_summer_time(traveller) -> None:
    """Sunday 29 March 2026, 10:00 EEST: the clocks went from 03:00 to 04:00, UTC+2 became UTC+3 overnight."""
    first_minute = confirmed_at(local(2026, 3, 30, 0))  # Sunday 21:00 UTC
    last_call = confirmed_at(local(2026, 3, 30, 23, 15))
    confirmed_at(local(2026, 3, 29, 23, 15))  # today, late
    confirmed_at(local(2026, 3, 31, 0))  # Tuesday's first minute

    traveller.move_to(local(2026, 3, 29, 10))
    assert local(2026, 3, 29, 10).utcoffset() == dt.timedelta(hours=3)
    assert bookings_remind() == 2

    assert reminded() == {first_minute.reference, last_call.reference}


def test_bookings__remind__the_evening_before_the_23_hour_day(traveller) -> None:
    """Saturday 28 March 2026, 19:00 EET: tomorrow is Sunday, which has only 23 hours."""
    sunday_late = confirmed_at(local(2026, 3, 29, 23, 30))  # 20:30 UTC, EEST
    confirmed_at(local(2026, 3, 30, 0, 15))  # Monday, 21:15 UTC: yet within 24 hours of Sunday 00:00 EET

    traveller.move_to(local(2026, 3, 28, 19))
    assert bookings_remind() == 1

    assert reminded() == {sunday_late.reference}


def test_remind_bookings_task__runs_the_reminders_and_is_scheduled(traveller) -> None:
    confirmed_at(CALL_AT)
    traveller.move_to(local(2026, 3, 29, 10))

    assert remind_bookings_task.delay().get() == 1
    assert remind_bookings_task.delay().get() == 0
    [entry] = [entry for entry in settings.CELERY_BEAT_SCHEDULE.values() if entry["task"] == remind_bookings_task.name]
    assert entry["schedule"] == crontab(minute="*/10")


# --- the SMS gateway ------------------------------------------------------------------------------------------------


@pytest.fixture
def gateway(settings, httpserver: HTTPServer) -> HTTPServer:
    settings.SMS_BACKEND = "kelabooking.sms.HttpGatewayBackend"
    settings.SMS_GATEWAY_URL = httpserver.url_for("/v1/messages")
    settings.SMS_GATEWAY_TOKEN = "gateway-token-123"
    settings.SMS_SENDER = "Kela"
    return httpserver


def test_sms__gateway_fails_then_answers__retried_and_delivered_once(traveller, gateway) -> None:
    gateway.expect_ordered_request("/v1/messages", method="POST").respond_with_json({"error": "busy"}, status=500)
    gateway.expect_ordered_request("/v1/messages", method="POST").respond_with_json({"status": "queued"}, status=202)
    booking = book(email="")
    sms = messages_of(booking, Booking.MessageKind.CONFIRMATION)["sms"]

    first = message_send(message_id=sms.pk)
    assert (first.sent, first.retry_in is not None) == (False, True)
    assert message_send(message_id=sms.pk).sent is False  # not due before the backoff has passed
    traveller.shift(dt.timedelta(seconds=first.retry_in + 1))
    assert message_send(message_id=sms.pk).sent is True
    assert message_send(message_id=sms.pk).sent is False

    gateway.check_assertions()
    requests = [request for request, _response in gateway.log]
    assert len(requests) == 2
    assert requests[0].headers["Idempotency-Key"] == requests[1].headers["Idempotency-Key"] == f"kelabooking-{sms.pk}"
    assert {request.headers["Authorization"] for request in requests} == {"Bearer gateway-token-123"}
    payload = json.loads(requests[1].get_data())
    assert payload == {"id": f"kelabooking-{sms.pk}", "to": PHONE, "from": "Kela", "text": sms.body}
    sms.refresh_from_db()
    assert (sms.status, sms.attempts, sms.last_error) == (Message.Status.SENT, 2, "")


def test_sms__gateway_refuses__failed_with_reason_shown_in_admin(traveller, gateway, admin_client, admin_user) -> None:
    gateway.expect_ordered_request("/v1/messages", method="POST").respond_with_json(
        {"error": "number not in service"}, status=400
    )
    booking = book(email="")
    sms = messages_of(booking, Booking.MessageKind.CONFIRMATION)["sms"]

    assert message_send(message_id=sms.pk).sent is False
    traveller.shift(dt.timedelta(hours=2))
    assert message_send(message_id=sms.pk).sent is False  # failed for good: never tried again

    assert len(gateway.log) == 1
    sms.refresh_from_db()
    assert sms.status == Message.Status.FAILED
    assert "HTTP 400" in sms.last_error
    assert "number not in service" in sms.last_error
    admin_client.force_login(admin_user)  # two hours on, the staff session has idled out: signed in again
    page = admin_client.get(reverse("admin:kelabooking_message_changelist"), {"status__exact": "failed"})
    assert page.status_code == 200
    assert "HTTP 400" in page.content.decode()
    assert "number not in service" in page.content.decode()


# --- the admin ------------------------------------------------------------------------------------------------------


def test_message_admin__changelist__shows_how_long_the_oldest_pending_message_has_waited(admin_client) -> None:
    start = clock.now()
    for waited in (dt.timedelta(days=1), dt.timedelta(hours=3), dt.timedelta(minutes=10)):
        with time_machine.travel(start - waited, tick=False):
            message = message_enqueue(
                key=f"test:{waited.total_seconds()}:sms",
                kind=Booking.MessageKind.REMINDER,
                channel=Message.Channel.SMS,
                recipient=PHONE,
                language="fi",
                subject="",
                body="Muistutus",
            )
    Message.objects.filter(created_at__lt=start - dt.timedelta(hours=4)).update(
        status=Message.Status.SENT, sent_at=start
    )  # a sent message has stopped waiting, however old

    with time_machine.travel(start, tick=False):
        page = admin_client.get(reverse("admin:kelabooking_message_changelist"), HTTP_ACCEPT_LANGUAGE="en")

    assert message.status == Message.Status.PENDING
    assert page.context["pending_count"] == 2
    assert page.context["oldest_pending_age"] == "3\xa0hours"
    assert "2 messages are waiting to be sent; the oldest has waited 3\xa0hours." in page.content.decode()


def test_message_admin__changelist__says_when_nothing_waits(admin_client) -> None:
    page = admin_client.get(reverse("admin:kelabooking_message_changelist"), HTTP_ACCEPT_LANGUAGE="en")

    assert page.context["oldest_pending_age"] == ""
    assert "No messages are waiting to be sent." in page.content.decode()
