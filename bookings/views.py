"""The partner's booking pages: the customer, their bookings, and booking or cancelling a telephone time.

What the partner has chosen so far lives in the server-side session, encrypted (the "draft", `context.booking_draft`),
so nothing typed is lost when a time has to be chosen again; the hold itself lives in the database, where it counts
against capacity.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe
from django_htmx.http import HttpResponseClientRedirect

from bookings.forms import CancelForm, ConfirmForm, ContactForm, CustomerForm, MatterForm, SlotForm, WeekForm
from bookings.languages import language_name
from bookings.models import SERVICE_LANGUAGES, Booking, ServiceLine
from bookings.selectors import (
    FreeWeek,
    acting_customer,
    acting_customer_and_hold,
    booked_matters,
    booking_cancellation,
    confirm_key,
    customer_booking,
    customer_names_after_confirm,
    free_week,
    hold_or_booking_made,
    partner_hold,
)
from bookings.services import (
    BookingError,
    ContactDetails,
    ExistingBookingError,
    HoldChangedError,
    MatterBookedError,
    SlotFullError,
    booking_cancel,
    booking_confirm,
    booking_details,
    booking_hold,
    booking_move,
    customer_find_or_create,
    customer_overview,
    register_contact_show,
)
from kelabooking import clock
from partners import context
from partners.context import CustomerLockedError, Step, acting_context, requires_step

# The reference just confirmed in this session: its page is then the confirmation page.
JUST_BOOKED_KEY = "just_booked"


# --- The customer ---------------------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@requires_step(Step.TERMS_ACCEPTED, before=Step.CUSTOMER_LOCKED)
def customer_view(request: HttpRequest) -> HttpResponse:
    """Enter the customer's identity code (POST only: it never enters a URL). One customer per session."""
    form = CustomerForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            with context.customer_step(request):
                customer = customer_find_or_create(
                    acting=acting_context(request), identity_code=form.cleaned_data["identity_code"]
                )
                context.lock_customer(request, customer)
        except CustomerLockedError as error:
            form.add_error(None, error.message)
        else:
            return redirect("bookings:overview")
    return render(request, "bookings/customer.html", {"form": form})


@require_safe
@never_cache
@requires_step(Step.CUSTOMER_LOCKED)
def overview_view(request: HttpRequest) -> HttpResponse:
    """The customer's details and bookings (the service records each showing of the register's contact details)."""
    # The history's page: up to six ASCII digits; anything else shows the first page.
    page = request.GET.get("page", "1")
    history_page = int(page) if page.isascii() and page.isdecimal() and len(page) <= 6 else 1
    acting = acting_context(request)
    overview = customer_overview(acting=acting, history_page=history_page)
    now = clock.now()
    return render(
        request,
        "bookings/overview.html",
        {
            "customer": overview.customer,
            "contact": overview.contact,
            "upcoming": [(booking, *booking.state(now), None) for booking in overview.upcoming],
            "history": [
                (booking, *booking.state(now), booking_cancellation(acting=acting, booking=booking))
                for booking in overview.history
            ],
            "overview": overview,
        },
    )


# --- Booking: matter, time, contact, check, confirm -----------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@requires_step(Step.CUSTOMER_LOCKED)
def matter_view(request: HttpRequest) -> HttpResponse:
    """The matter, the language and the interpreter. A matter the customer already has an upcoming time for says so,
    with that time, its reference and links to it, and choosing it is refused here: DESIGN.md §4 rule 4, read through
    `booked_matters` at the first step it concerns (the confirm decides again, under the customer's lock)."""
    acting = acting_context(request)
    customer = acting_customer(acting=acting)
    booked = booked_matters(customer=customer)
    draft = context.booking_draft(request)
    initial = {
        "service_line": draft.get("service_line_id"),
        # Never the pages' language: a caseworker reading Swedish pages books Finnish calls as often as Swedish ones.
        "language": draft.get("language"),
        "interpreter_needed": "yes" if draft.get("interpreter_language") else "no",
        "interpreter_language": draft.get("interpreter_language", ""),
    }
    form = MatterForm(
        request.POST if request.method == "POST" else None,
        initial=initial,
        notes={line_id: f"existing-{line_id}" for line_id in booked},
    )
    if request.method == "POST" and form.is_valid():
        if (existing := booked.get(form.cleaned_data["service_line"].pk)) is not None:
            form.add_error("service_line", MatterBookedError(existing).message)
        else:
            context.booking_draft_save(
                request,
                service_line_id=form.cleaned_data["service_line"].pk,
                language=form.cleaned_data["language"],
                interpreter_language=form.cleaned_data["interpreter_language"],
            )
            return redirect("bookings:time")
    lines = {line.pk: line for line in form.fields["service_line"].queryset}
    service_lines = []
    for radio in form["service_line"]:
        line = lines[int(str(radio.data["value"]))]
        service_lines.append((radio, line, booked.get(line.pk)))
    return render(
        request, "bookings/matter.html", {"form": form, "service_lines": service_lines, "booking_customer": customer}
    )


def _requested_week(request: HttpRequest) -> dt.date | None:
    """The week the time picker asks for (`?week=`, or the week form field kept across an error), if it is a date."""
    form = WeekForm({"week": request.GET.get("week") or request.POST.get("week", "")})
    return form.cleaned_data["week"] if form.is_valid() else None


def _time_page(request: HttpRequest, draft: dict[str, Any], *, error: str = "", alternatives=None) -> HttpResponse:
    """The time step; or, when the customer has got a booking of the draft's matter meanwhile (another tab, another
    partner), back to the matter step, which shows that booking and its links beside the matter."""
    if "service_line_id" not in draft:  # the draft is gone (a new customer in another tab): start from the matter
        if error:
            messages.error(request, error)
        return redirect("bookings:matter")
    customer, hold = acting_customer_and_hold(acting=acting_context(request))
    booked = booked_matters(customer=customer)
    if (existing := booked.get(draft["service_line_id"])) is not None:
        messages.error(request, MatterBookedError(existing).message)
        matter = reverse("bookings:matter")
        return HttpResponseClientRedirect(matter) if request.htmx else redirect(matter)
    interpreter = draft.get("interpreter_language")
    week = free_week(
        service_line=ServiceLine.objects.get(pk=draft["service_line_id"]),
        language=draft["language"],
        customer_id=customer.pk,
        week=_requested_week(request),
    )
    context_ = _week_context(week, error=error, alternatives=alternatives) | {
        "held_slot_id": hold.slot_id if hold else None,
        "action": reverse("bookings:time"),
        "booking_customer": customer,
        "other_bookings": bool(booked),
        "interpreter_language_name": language_name(interpreter) if interpreter else "",
    }
    return _week_page(request, context_)


def _week_page(request: HttpRequest, context_: dict[str, Any]) -> HttpResponse:
    """The time picker's page, or only its week when htmx asks for another week (and the week's heading then takes
    the focus: htmx focuses `autofocus` in what it swaps in). htmx's own request to restore a page from history (the
    browser's back button) gets the whole page, as the address is the page's."""
    partial = bool(request.htmx) and not request.htmx.history_restore_request and request.method in ("GET", "HEAD")
    template = "bookings/time.html#slot-list" if partial else "bookings/time.html"
    response = render(request, template, context_ | {"week_swapped": partial})
    patch_vary_headers(response, ["HX-Request", "HX-History-Restore-Request"])
    return response


def _week_context(week: FreeWeek, *, error: str = "", alternatives=None) -> dict[str, Any]:
    """The time picker's week (`free_week`), with the error and the nearest free times of a refused pick."""
    return {
        "service_line": week.service_line,
        "language_name": dict(SERVICE_LANGUAGES)[week.language],
        "first_free": week.first_free,
        "monday": week.monday,
        "sunday": week.sunday,
        "days": week.days,
        "previous_week": week.previous_monday.isoformat() if week.previous_monday else "",
        "next_week": week.next_monday.isoformat() if week.next_monday else "",
        "held_slot_id": None,
        "error": error,
        "alternatives": alternatives or [],
    }


@require_http_methods(["GET", "HEAD", "POST"])
@never_cache
@requires_step(Step.CUSTOMER_LOCKED)
def time_view(request: HttpRequest) -> HttpResponse:
    """Pick a time: the next free time first, then a week of free times, without those that overlap another of the
    customer's bookings; picking one holds it."""
    draft = context.booking_draft(request)
    if "service_line_id" not in draft:
        return redirect("bookings:matter")
    if request.method == "POST":
        form = SlotForm(request.POST)
        if not form.is_valid():
            return _time_page(request, draft, error=_("Choose a time."))
        try:
            booking_hold(acting=acting_context(request), slot_id=form.cleaned_data["slot"])
        except SlotFullError as error:
            return _time_page(request, draft, error=error.message, alternatives=error.alternatives)
        except BookingError as error:
            return _time_page(request, draft, error=error.message)
        return redirect("bookings:contact")
    return _time_page(request, draft)


@require_http_methods(["GET", "HEAD", "POST"])
@never_cache
@requires_step(Step.CUSTOMER_LOCKED)
def contact_view(request: HttpRequest) -> HttpResponse:
    """Contact details for this booking: the register's, pre-filled only without non-disclosure (and the showing
    recorded, as the overview's)."""
    draft = context.booking_draft(request)
    acting = acting_context(request)
    hold = partner_hold(acting=acting)
    if hold is None:
        return redirect("bookings:time" if "service_line_id" in draft else "bookings:matter")
    customer = hold.customer
    initial = draft.get("contact") or {}
    if (
        not initial
        and request.method == "GET"  # a posted form shows what was posted, and HEAD shows nothing
        and (contact := register_contact_show(acting=acting, customer=customer)) is not None
    ):
        initial = {"phone": contact.phone, "email": contact.email}
    if not initial and not customer.in_register:  # the names a partner gave before, to keep or correct
        initial = {"first_name": customer.first_name, "last_name": customer.last_name}
    form = ContactForm(
        request.POST if request.method == "POST" else None, initial=initial, names_required=not customer.in_register
    )
    if request.method == "POST" and form.is_valid():
        context.booking_draft_save(request, contact=form.cleaned_data)
        return redirect("bookings:check")
    return render(request, "bookings/contact.html", {"form": form, "hold": hold, "customer": customer})


@require_http_methods(["GET", "HEAD", "POST"])
@never_cache
@requires_step(Step.CUSTOMER_LOCKED)
def check_view(request: HttpRequest) -> HttpResponse:
    """Check your answers, then confirm. The form names the hold it shows and carries an idempotency key: a double
    submit books once, and a confirm from a tab whose hold was replaced books nothing."""
    draft = context.booking_draft(request)
    if request.method == "POST":
        return _confirm(request, draft)
    hold, made = hold_or_booking_made(acting=acting_context(request), since=context.booking_draft_started(draft))
    if made is not None:
        # Confirmed, but the session never heard of it (its save failed after the commit): show what was made.
        context.booking_draft_drop(request)
        return redirect("bookings:done", reference=made.reference)
    if hold is None or "contact" not in draft:
        return redirect("bookings:contact" if hold else "bookings:time")
    return render(request, "bookings/check.html", _summary(draft, hold) | {"idempotency_key": confirm_key(hold)})


def _summary(draft: dict[str, Any], hold: Booking) -> dict[str, Any]:
    typed = draft["contact"]
    first_name, last_name = customer_names_after_confirm(
        hold.customer, first_name=typed.get("first_name", ""), last_name=typed.get("last_name", "")
    )
    return {
        "hold": hold,
        "customer_name": f"{first_name} {last_name}".strip(),
        "slot": hold.slot,
        "contact": draft["contact"],
        "language_name": dict(SERVICE_LANGUAGES)[hold.slot.language],
        "interpreter_language_name": language_name(draft["interpreter_language"])
        if draft.get("interpreter_language")
        else "",
    }


def _confirm(request: HttpRequest, draft: dict[str, Any]) -> HttpResponse:
    form = ConfirmForm(request.POST)
    if not form.is_valid():
        return redirect("bookings:check")
    acting = acting_context(request)
    contact = draft.get("contact") or {}
    try:
        booking = booking_confirm(
            acting=acting,
            hold_id=form.cleaned_data["hold"],
            idempotency_key=form.cleaned_data["idempotency_key"],
            contact=ContactDetails(
                phone=contact.get("phone", ""),
                email=contact.get("email", ""),
                description=contact.get("description", ""),
                interpreter_language=draft.get("interpreter_language", ""),
                first_name=contact.get("first_name", ""),
                last_name=contact.get("last_name", ""),
            ),
        )
    except SlotFullError as error:
        # The hold ran out and the time was taken meanwhile: back to the times, with everything typed kept.
        return _time_page(request, draft, error=error.message, alternatives=error.alternatives)
    except HoldChangedError as error:
        messages.error(request, error.message)
        return redirect("bookings:check")
    except ExistingBookingError as error:
        # The customer got another booking meanwhile: the time step says so again, without the times it rules out
        # (or the matter step, when it is a booking of this matter), with everything typed kept.
        return _time_page(request, draft, error=error.message)
    except BookingError as error:
        messages.error(request, error.message)
        return redirect("bookings:time")
    context.booking_draft_drop(request)
    started = context.booking_draft_started(draft)
    if started is not None and booking.confirmed_at >= started:
        # The confirmation that follows the typing: the booking this draft made. A repeat of the form after the draft
        # is gone (or under a later draft) returns the same booking, but as its page, never as the confirmation again.
        request.session[JUST_BOOKED_KEY] = booking.reference
    return redirect("bookings:done", reference=booking.reference)


@require_safe
@never_cache
@requires_step(Step.CUSTOMER_LOCKED)
def done_view(request: HttpRequest, reference: str) -> HttpResponse:
    """A booking's own page: the confirmation right after booking, later the place to check, move or cancel it. The
    contact details typed for it are shown as `booking_contact` allows: to the organisation that made it, and for a
    customer with non-disclosure only on the confirmation."""
    just_booked = request.session.pop(JUST_BOOKED_KEY, None) == reference
    acting = acting_context(request)
    details = booking_details(acting=acting, reference=reference, just_confirmed=just_booked)
    booking = details.booking
    state, state_name = booking.state(clock.now())
    return render(
        request,
        "bookings/done.html",
        {
            "booking": booking,
            "contact": details.contact,
            "cancellation": booking_cancellation(acting=acting, booking=booking),
            "slot": booking.slot,
            "booking_customer": booking.customer,
            "just_booked": just_booked,
            "state": state,
            "state_name": state_name,
            "language_name": dict(SERVICE_LANGUAGES)[booking.slot.language],
            "interpreter_language_name": language_name(booking.interpreter_language),
        },
    )


@require_http_methods(["GET", "HEAD", "POST"])
@requires_step(Step.CUSTOMER_LOCKED)
def cancel_view(request: HttpRequest, reference: str) -> HttpResponse:
    """Cancel an upcoming booking at the customer's request, after a confirmation step."""
    acting = acting_context(request)
    booking = customer_booking(acting=acting, reference=reference)
    form = CancelForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            booking_cancel(acting=acting, booking_id=booking.pk, reason=form.cleaned_data["reason"])
        except BookingError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, _("The booking %(reference)s has been cancelled.") % {"reference": reference})
        return redirect("bookings:overview")
    return render(request, "bookings/cancel.html", {"booking": booking, "slot": booking.slot, "form": form})


@require_http_methods(["GET", "HEAD", "POST"])
@never_cache
@requires_step(Step.CUSTOMER_LOCKED)
def move_view(request: HttpRequest, reference: str) -> HttpResponse:
    """Move an upcoming booking to another time of the same matter, at the customer's request."""
    acting = acting_context(request)
    booking = customer_booking(acting=acting, reference=reference)
    slot = booking.slot
    error, alternatives = "", None
    if request.method == "POST":
        form = SlotForm(request.POST)
        if not form.is_valid():
            error = _("Choose a time.")
        else:
            try:
                booking_move(acting=acting, booking_id=booking.pk, slot_id=form.cleaned_data["slot"])
            except SlotFullError as refused:
                error, alternatives = refused.message, refused.alternatives
            except BookingError as refused:
                error = refused.message
            else:
                messages.success(request, _("The booking %(reference)s has a new time.") % {"reference": reference})
                return redirect("bookings:done", reference=reference)
    others = [other for other in booked_matters(customer=booking.customer).values() if other.pk != booking.pk]
    week = free_week(
        service_line=slot.service_line,
        language=slot.language,
        customer_id=booking.customer_id,
        week=_requested_week(request),
        excluding=booking,
    )
    context_ = _week_context(week, error=error, alternatives=alternatives) | {
        "moving": booking,
        "interpreter_language_name": language_name(booking.interpreter_language),
        "other_bookings": bool(others),
        "action": reverse("bookings:move", kwargs={"reference": reference}),
        "booking_customer": booking.customer,
    }
    return _week_page(request, context_)
