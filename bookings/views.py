"""The partner's booking pages: the customer, their bookings, and booking or cancelling a telephone time.

What the partner has chosen so far lives in the server-side session (the "draft"), so nothing typed is lost when a
time has to be chosen again; the hold itself lives in the database, where it counts against capacity.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from bookings.forms import CancelForm, ContactForm, CustomerForm, MatterForm, SlotForm
from bookings.languages import language_name
from bookings.models import SERVICE_LANGUAGES, Booking, Customer, ServiceLine
from bookings.selectors import customer_bookings, free_slots, partner_hold, register_contact
from bookings.services import (
    BookingError,
    ExistingBookingError,
    SlotFullError,
    booking_cancel,
    booking_confirm,
    booking_hold,
    customer_find_or_create,
)
from bookings.services.booking import ContactDetails, bookable_window
from kelabooking import clock
from partners import context
from partners.context import CustomerLockedError, Step, requires_step
from partners.models import AuditEvent
from partners.services import audit_event_record
from registry.selectors import organisation_by_business_id

DRAFT_KEY = "booking_draft"


def _customer(request: HttpRequest) -> Customer:
    return Customer.objects.get(pk=context.acting_context(request).customer_id)


def _draft(request: HttpRequest) -> dict[str, Any]:
    return dict(request.session.get(DRAFT_KEY, {}))


def _save_draft(request: HttpRequest, **values: Any) -> dict[str, Any]:
    draft = {**_draft(request), **values}
    request.session[DRAFT_KEY] = draft
    return draft


# --- The customer ---------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@requires_step(Step.TERMS_ACCEPTED)
def customer_view(request: HttpRequest) -> HttpResponse:
    """Enter the customer's identity code (POST only: it never enters a URL). One customer per session."""
    if context.acting_context(request).step >= Step.CUSTOMER_LOCKED:
        return redirect("bookings:overview")
    form = CustomerForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        customer = customer_find_or_create(identity_code=form.cleaned_data["identity_code"])
        try:
            context.lock_customer(request, customer)
        except CustomerLockedError as error:
            form.add_error(None, error.message)
        else:
            return redirect("bookings:overview")
    return render(request, "bookings/customer.html", {"form": form})


@require_GET
@never_cache
@requires_step(Step.CUSTOMER_LOCKED)
def overview_view(request: HttpRequest) -> HttpResponse:
    """The customer's details and bookings. Each view is recorded; contact details never with non-disclosure."""
    customer = _customer(request)
    audit_event_record(request=request, action=AuditEvent.Action.CUSTOMER_OPENED, customer=customer)
    contact = register_contact(customer=customer)
    if contact is not None:
        audit_event_record(request=request, action=AuditEvent.Action.CONTACT_DETAILS_SHOWN, customer=customer)
    now = clock.now()
    bookings = list(customer_bookings(customer=customer))
    return render(
        request,
        "bookings/overview.html",
        {
            "customer": customer,
            "contact": contact,
            "upcoming": [b for b in bookings if b.status == Booking.Status.CONFIRMED and b.slot.starts_at > now],
            "history": [b for b in bookings if b.status != Booking.Status.CONFIRMED or b.slot.starts_at <= now],
        },
    )


# --- Booking: matter, time, contact, check, confirm -----------------------------------------------------------


@require_http_methods(["GET", "POST"])
@requires_step(Step.CUSTOMER_LOCKED)
def matter_view(request: HttpRequest) -> HttpResponse:
    draft = _draft(request)
    initial = {
        "service_line": draft.get("service_line_id"),
        "language": draft.get("language", request.LANGUAGE_CODE),
        "interpreter_needed": "yes" if draft.get("interpreter_language") else "no",
        "interpreter_language": draft.get("interpreter_language", ""),
    }
    form = MatterForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        _save_draft(
            request,
            service_line_id=form.cleaned_data["service_line"].pk,
            language=form.cleaned_data["language"],
            interpreter_language=form.cleaned_data["interpreter_language"],
        )
        return redirect("bookings:time")
    return render(request, "bookings/matter.html", {"form": form})


def _week_start(value: str | None, first_free: dt.datetime | None) -> dt.date:
    """The Monday of the requested week; by default the week of the first free time."""
    try:
        day = dt.date.fromisoformat(value) if value else None
    except ValueError:
        day = None
    if day is None:
        day = timezone.localtime(first_free).date() if first_free else clock.localnow().date()
    return day - dt.timedelta(days=day.weekday())


def _time_context(request: HttpRequest, draft: dict[str, Any], *, error: str = "", alternatives=None) -> dict:
    service_line = ServiceLine.objects.get(pk=draft["service_line_id"])
    now = clock.now()
    earliest, latest = bookable_window(now)
    first = free_slots(service_line=service_line, language=draft["language"], start=earliest, end=latest, now=now)[:1]
    monday = _week_start(request.GET.get("week"), first[0].starts_at if first else None)
    tz = timezone.get_current_timezone()
    week_start = max(timezone.make_aware(dt.datetime.combine(monday, dt.time()), tz), earliest)
    week_end = min(timezone.make_aware(dt.datetime.combine(monday + dt.timedelta(days=7), dt.time()), tz), latest)
    slots = (
        free_slots(service_line=service_line, language=draft["language"], start=week_start, end=week_end, now=now)
        if week_start < week_end
        else []
    )
    days: dict[dt.date, list] = {}
    for slot in slots:
        days.setdefault(timezone.localtime(slot.starts_at).date(), []).append(slot)
    previous_monday, next_monday = monday - dt.timedelta(days=7), monday + dt.timedelta(days=7)
    hold = partner_hold(partner=request.user, customer=_customer(request))
    return {
        "service_line": service_line,
        "language_name": dict(SERVICE_LANGUAGES)[draft["language"]],
        "first_free": first[0] if first else None,
        "monday": monday,
        "sunday": monday + dt.timedelta(days=6),
        "days": sorted(days.items()),
        "previous_week": previous_monday.isoformat()
        if previous_monday + dt.timedelta(days=7) > earliest.date()
        else "",
        "next_week": next_monday.isoformat() if next_monday <= latest.date() else "",
        "held_slot_id": hold.slot_id if hold else None,
        "error": error,
        "alternatives": alternatives or [],
    }


@require_http_methods(["GET", "POST"])
@never_cache
@requires_step(Step.CUSTOMER_LOCKED)
def time_view(request: HttpRequest) -> HttpResponse:
    """Pick a time: the next free time first, then a week of free times; picking one holds it."""
    draft = _draft(request)
    if "service_line_id" not in draft:
        return redirect("bookings:matter")
    if request.method == "POST":
        form = SlotForm(request.POST)
        if not form.is_valid():
            return render(request, "bookings/time.html", _time_context(request, draft, error=_("Choose a time.")))
        acting = context.acting_context(request)
        try:
            hold = booking_hold(
                slot_id=form.cleaned_data["slot"],
                customer=_customer(request),
                partner=request.user,
                organisation=organisation_by_business_id(business_id=acting.organisation_business_id),
            )
        except SlotFullError as error:
            return render(
                request,
                "bookings/time.html",
                _time_context(request, draft, error=error.message, alternatives=error.alternatives),
            )
        except BookingError as error:
            return render(request, "bookings/time.html", _time_context(request, draft, error=error.message))
        # A hold is released by deleting it, so its event names it rather than linking to the row.
        audit_event_record(
            request=request,
            action=AuditEvent.Action.BOOKING_HELD,
            customer=hold.customer,
            details={"reference": hold.reference, "slot": hold.slot_id},
        )
        _save_draft(request, hold_id=hold.pk)
        return redirect("bookings:contact")
    template = "bookings/time.html#slot-list" if request.htmx else "bookings/time.html"
    return render(request, template, _time_context(request, draft))


def _current_hold(request: HttpRequest, draft: dict[str, Any]) -> Booking | None:
    hold = partner_hold(partner=request.user, customer=_customer(request))
    return hold if hold is not None and hold.pk == draft.get("hold_id") else None


@require_http_methods(["GET", "POST"])
@never_cache
@requires_step(Step.CUSTOMER_LOCKED)
def contact_view(request: HttpRequest) -> HttpResponse:
    """Contact details for this booking: the register's, pre-filled only without non-disclosure."""
    draft = _draft(request)
    hold = _current_hold(request, draft)
    if hold is None:
        return redirect("bookings:time" if "service_line_id" in draft else "bookings:matter")
    customer = hold.customer
    initial = draft.get("contact") or {}
    if not initial and (contact := register_contact(customer=customer)) is not None:
        initial = {"phone": contact.phone, "email": contact.email}
    form = ContactForm(
        request.POST if request.method == "POST" else None, initial=initial, names_required=not customer.in_register
    )
    if request.method == "POST" and form.is_valid():
        _save_draft(request, contact=form.cleaned_data)
        return redirect("bookings:check")
    return render(request, "bookings/contact.html", {"form": form, "hold": hold, "customer": customer})


@require_http_methods(["GET", "POST"])
@never_cache
@requires_step(Step.CUSTOMER_LOCKED)
def check_view(request: HttpRequest) -> HttpResponse:
    """Check your answers, then confirm. The form carries an idempotency key: a double submit books once."""
    draft = _draft(request)
    if request.method == "POST":
        return _confirm(request, draft)
    hold = _current_hold(request, draft)
    if hold is None or "contact" not in draft:
        return redirect("bookings:contact" if hold else "bookings:time")
    key = draft.get("idempotency_key") or str(uuid.uuid4())
    _save_draft(request, idempotency_key=key)
    return render(request, "bookings/check.html", _summary(draft, hold) | {"idempotency_key": key})


def _summary(draft: dict[str, Any], hold: Booking) -> dict[str, Any]:
    return {
        "hold": hold,
        "slot": hold.slot,
        "contact": draft["contact"],
        "language_name": dict(SERVICE_LANGUAGES)[hold.slot.language],
        "interpreter_language_name": language_name(draft["interpreter_language"])
        if draft.get("interpreter_language")
        else "",
    }


def _confirm(request: HttpRequest, draft: dict[str, Any]) -> HttpResponse:
    try:
        key = uuid.UUID(request.POST.get("idempotency_key", ""))
    except ValueError:
        return redirect("bookings:check")
    contact = draft.get("contact")
    if contact is None or "hold_id" not in draft:
        earlier = Booking.objects.filter(idempotency_key=key, booked_by=request.user).first()
        return redirect("bookings:done", reference=earlier.reference) if earlier else redirect("bookings:matter")

    def record(booking: Booking) -> None:  # in the booking's transaction: no booking without its audit event
        audit_event_record(
            request=request, action=AuditEvent.Action.BOOKING_CONFIRMED, customer=booking.customer, booking=booking
        )

    try:
        booking = booking_confirm(
            booking_id=draft["hold_id"],
            partner=request.user,
            idempotency_key=key,
            contact=ContactDetails(
                phone=contact["phone"],
                email=contact.get("email", ""),
                description=contact.get("description", ""),
                interpreter_language=draft.get("interpreter_language", ""),
                first_name=contact.get("first_name", ""),
                last_name=contact.get("last_name", ""),
            ),
            record=record,
        )
    except SlotFullError as error:
        # The hold ran out and the time was taken meanwhile: back to the times, with everything typed kept.
        _save_draft(request, hold_id=None)
        context_ = _time_context(request, draft, error=error.message, alternatives=error.alternatives)
        return render(request, "bookings/time.html", context_)
    except ExistingBookingError as error:
        messages.error(request, error.message)
        return redirect("bookings:overview")
    except BookingError as error:
        messages.error(request, error.message)
        return redirect("bookings:time")
    request.session.pop(DRAFT_KEY, None)
    return redirect("bookings:done", reference=booking.reference)


def _customer_booking(request: HttpRequest, reference: str) -> Booking:
    """A booking of the locked customer; anything else is a 404, whatever reference is sent."""
    booking = (
        Booking.objects.filter(reference=reference, customer_id=context.acting_context(request).customer_id)
        .exclude(status=Booking.Status.HELD)
        .select_related("slot__service_line", "organisation")
        .first()
    )
    if booking is None:
        raise Http404
    return booking


@require_GET
@requires_step(Step.CUSTOMER_LOCKED)
def done_view(request: HttpRequest, reference: str) -> HttpResponse:
    booking = _customer_booking(request, reference)
    return render(
        request,
        "bookings/done.html",
        {
            "booking": booking,
            "slot": booking.slot,
            "language_name": dict(SERVICE_LANGUAGES)[booking.slot.language],
            "interpreter_language_name": language_name(booking.interpreter_language),
        },
    )


@require_http_methods(["GET", "POST"])
@requires_step(Step.CUSTOMER_LOCKED)
def cancel_view(request: HttpRequest, reference: str) -> HttpResponse:
    """Cancel an upcoming booking at the customer's request, after a confirmation step."""
    booking = _customer_booking(request, reference)
    form = CancelForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():

        def record(cancelled: Booking) -> None:  # in the cancellation's transaction, as for a confirm
            audit_event_record(
                request=request,
                action=AuditEvent.Action.BOOKING_CANCELLED,
                customer=cancelled.customer,
                booking=cancelled,
            )

        try:
            booking_cancel(booking_id=booking.pk, actor=request.user, reason=form.cleaned_data["reason"], record=record)
        except BookingError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, _("The booking %(reference)s has been cancelled.") % {"reference": reference})
        return redirect("bookings:overview")
    return render(request, "bookings/cancel.html", {"booking": booking, "slot": booking.slot, "form": form})
