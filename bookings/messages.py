"""What the customer is told about a booking: an SMS always, an e-mail with a calendar entry when an address was given.

The texts are built only from what was typed for this booking (contact phone and e-mail, interpreter language) and
from the slot, never from the customer's register record: a customer with non-disclosure gets nothing from the
register, and nobody ever gets an identity code. Everything is in the booking's service language, whatever language
the partner's page was in.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from email.utils import parseaddr
from zoneinfo import ZoneInfo

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import dateformat, translation
from django.utils.formats import get_format
from django.utils.translation import gettext
from icalendar import Calendar, Event, vCalAddress, vText

from bookings.languages import language_name
from bookings.models import Booking
from bookings.services.changes import BookingChange
from kelabooking import clock
from kelabooking.message_kinds import RenderedMessage
from kelabooking.models import Message
from kelabooking.phone import format_phone
from kelabooking.services import messages_enqueue

logger = logging.getLogger(__name__)

HELSINKI = ZoneInfo("Europe/Helsinki")
# The ceiling for one customer SMS (three concatenated GSM segments); longer texts cost more and read badly.
SMS_MAX_LENGTH = 320
# How each service language writes a date and a clock time (Finnish "maanantai 30.3.2026 klo 9.00").
DATE_FORMATS = {"fi": "l j.n.Y", "sv": "l j F Y", "en": "l j F Y"}


def caller_note(language: str) -> str:
    """How the customer recognises Kela's call (a setting per language: the numbers Kela calls from may change)."""
    notes = {"fi": settings.KELA_CALLER_NOTE_FI, "sv": settings.KELA_CALLER_NOTE_SV}
    return notes.get(language, settings.KELA_CALLER_NOTE_EN)


def _context(booking: Booking, *, language: str) -> dict[str, str | bool]:
    """Plain values only: no model instance reaches a template, so no template can reach the register."""
    starts_at = booking.slot.starts_at.astimezone(HELSINKI)
    ends_at = booking.slot.ends_at.astimezone(HELSINKI)
    date_format = DATE_FORMATS.get(language, DATE_FORMATS["en"])
    time_format = get_format("TIME_FORMAT", lang=language)  # kelabooking/formats/
    return {
        "language": language,
        "reference": booking.reference,
        "date": dateformat.format(starts_at, date_format),
        "start": dateformat.time_format(starts_at, time_format),
        "end": dateformat.time_format(ends_at, time_format),
        "matter": booking.slot.service_line.name,
        "phone": format_phone(booking.contact_phone),
        "caller_note": caller_note(language),
        "interpreter_language": language_name(booking.interpreter_language) if booking.interpreter_language else "",
        # Only a partner booking can be cancelled through the one who made it; other bookings through Kela.
        "booked_by_partner": booking.channel == Booking.Channel.PARTNER,
    }


def _tidy(text: str) -> str:
    """Template whitespace out: no trailing spaces, at most one empty line in a row."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def _sms_text(kind: str, context: dict[str, str | bool]) -> str:
    """One paragraph. The templates write the time window with a plain hyphen: an en dash is not in the GSM 7-bit
    alphabet and would make the gateway send the whole text as UCS-2, 70 characters a segment."""
    text = " ".join(render_to_string(f"bookings/messages/{kind}_sms.txt", context).split())
    if len(text) > SMS_MAX_LENGTH:
        # Only a very long caller note set in the environment gets here; the time always comes first.
        logger.warning("The %s SMS is %s characters long; cut to %s", kind, len(text), SMS_MAX_LENGTH)
        text = text[: SMS_MAX_LENGTH - 3].rstrip() + "..."
    return text


def booking_calendar(*, booking: Booking, kind: str) -> str:
    """The booking as an iCalendar invitation: one event whose UID stays the same for the booking's lifetime.

    Confirmation, reminder and change are `REQUEST` with the booking's `sequence` (0 until it is first moved: the same
    event again changes nothing in a calendar, a moved one replaces it); the cancellation is `CANCEL` with one more
    and `STATUS:CANCELLED`, which removes it. Times carry the
    `Europe/Helsinki` TZID and the calendar its VTIMEZONE, so the call shows at the right hour in any time zone.
    """
    language = booking.slot.language
    cancelled = kind == Booking.MessageKind.CANCELLATION
    with translation.override(language):
        summary = (
            gettext("Cancelled: telephone appointment with Kela")
            if cancelled
            else gettext("Telephone appointment with Kela")
        )
        description = _sms_text(kind, _context(booking, language=language))
    starts_at = booking.slot.starts_at.astimezone(HELSINKI)
    sender_name, sender_address = parseaddr(settings.DEFAULT_FROM_EMAIL)

    calendar = Calendar()
    calendar.add("prodid", "-//Kela//kelabooking//FI")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancelled else "REQUEST")
    event = Event()
    event.add("uid", f"{booking.reference}@kelabooking")
    event.add("sequence", booking.sequence + 1 if cancelled else booking.sequence)
    event.add("dtstamp", clock.now().astimezone(dt.UTC))
    event.add("dtstart", starts_at)
    event.add("dtend", booking.slot.ends_at.astimezone(HELSINKI))
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("summary", vText(summary), parameters={"LANGUAGE": language})
    event.add("description", vText(description), parameters={"LANGUAGE": language})
    event.add("transp", "OPAQUE")
    organizer = vCalAddress(f"mailto:{sender_address}")
    organizer.params["CN"] = sender_name or "Kela"
    event.add("organizer", organizer)
    if booking.contact_email:
        attendee = vCalAddress(f"mailto:{booking.contact_email}")
        attendee.params.update({"ROLE": "REQ-PARTICIPANT", "PARTSTAT": "ACCEPTED", "RSVP": "FALSE"})
        event.add("attendee", attendee)
    calendar.add_component(event)
    # Transitions for the year around the call are enough, and keep the attachment small.
    calendar.add_missing_timezones(
        first_date=starts_at.date() - dt.timedelta(days=366), last_date=starts_at.date() + dt.timedelta(days=366)
    )
    return calendar.to_ical().decode()


def booking_message_key(*, booking: Booking, kind: str, channel: str) -> str:
    """`booking:<pk>:<kind>:<channel>`, with the booking's sequence after the kind once it has been moved: each move
    sends its own change message, and the reminder of the new time is not taken for the old one's."""
    version = f"{kind}.{booking.sequence}" if booking.sequence else kind
    return f"booking:{booking.pk}:{version}:{channel}"


def booking_messages_enqueue(*, booking: Booking, kind: str) -> list[Message]:
    """Queue what the customer is told about `kind` (confirmation, cancellation or reminder) in the caller's
    transaction: an SMS to the booking's contact phone always, an e-mail with the calendar entry when an address
    was given for this booking. Each has the outbox key `booking:<pk>:<kind>:<channel>`, so it is queued once.

    The texts are not written here but by the worker, before the first send (`booking_message_render`): the
    booking request does not pay for templates and the calendar entry, and what they are built from (the slot, the
    contact details typed for the booking) does not change after it is booked.
    """
    if kind not in Booking.MessageKind.values:
        raise ValueError(f"No booking message of kind {kind!r}")
    language = booking.slot.language
    recipients = [(Message.Channel.SMS, booking.contact_phone)]
    if booking.contact_email:
        recipients.append((Message.Channel.EMAIL, booking.contact_email))
    return messages_enqueue(
        messages=[
            Message(
                key=booking_message_key(booking=booking, kind=kind, channel=channel),
                kind=kind,
                channel=channel,
                recipient=recipient,
                language=language,
                context={"booking": booking.pk},
            )
            for channel, recipient in recipients
        ]
    )


# Which booking changes the customer is told about, and with which message. A hold is not: nothing is booked yet.
CHANGE_MESSAGES = {
    BookingChange.CONFIRMED: Booking.MessageKind.CONFIRMATION,
    BookingChange.MOVED: Booking.MessageKind.CHANGE,
    BookingChange.CANCELLED: Booking.MessageKind.CANCELLATION,
    BookingChange.REMINDED: Booking.MessageKind.REMINDER,
}


def booking_change_messages(*, booking: Booking, change: BookingChange) -> None:
    """The customer's messages as a consumer of the booking changes (`on_booking_changed`, registered in
    `BookingsConfig.ready()`): queued in the change's transaction."""
    if (kind := CHANGE_MESSAGES.get(change)) is not None:
        booking_messages_enqueue(booking=booking, kind=kind)


def booking_message_render(message: Message) -> RenderedMessage:
    """The texts of a queued booking message, in the booking's service language.

    Only what was typed for the booking is used: never the register's phone or address (non-disclosure), never an
    identity code.
    """
    booking = Booking.objects.select_related("slot__service_line").get(pk=message.context["booking"])
    kind, language = message.kind, booking.slot.language
    with translation.override(language):
        context = _context(booking, language=language)
        if message.channel == Message.Channel.SMS:
            return RenderedMessage(body=_sms_text(kind, context))
        subject = " ".join(render_to_string(f"bookings/messages/{kind}_subject.txt", context).split())
        email_context = context | {"subject": subject}
        return RenderedMessage(
            subject=subject,
            body=_tidy(render_to_string(f"bookings/messages/{kind}_email.txt", email_context)),
            body_html=render_to_string(f"bookings/messages/{kind}_email.html", email_context).strip(),
            calendar=booking_calendar(booking=booking, kind=kind),
        )
