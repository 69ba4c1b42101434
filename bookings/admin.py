from __future__ import annotations

import csv
import datetime as dt
import re

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.forms.formsets import DELETION_FIELD_NAME
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_safe

from bookings import insights, services
from bookings.forms import InsightsForm
from bookings.languages import language_name
from bookings.models import Booking, ClosedDay, Customer, OpeningRule, ServiceLine, Slot
from bookings.services.slots import SERVICE_TIMEZONE
from kelabooking import clock
from kelabooking.admin import ReadOnlyAdminMixin, StrictAdminMixin, csv_safe
from kelabooking.forms import BoundedDateField
from kelabooking.phone import format_phone
from partners.context import ActingRefusedError, acting_context
from partners.staff.services import staff_call_list_record

# A number as `format_phone` shows it: only digits and spaces after the "+", nothing a spreadsheet could run.
DISPLAYED_PHONE = re.compile(r"\+?[0-9][0-9 ]{5,20}")


class RowLabelledInlineFormSet(forms.BaseInlineFormSet):
    """A tabular inline's fields named for assistive technology: a row's inputs have only the column heading above
    them, so each gets an `aria-label` naming the field and the row ("Opens at, row 2"); the template row that
    "Add another" copies is "new row" (the admin's script renumbers ids and names, not labels)."""

    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        row = _("new row") if index is None else _("row %(number)d") % {"number": index + 1}
        for name, field in form.fields.items():
            if field.widget.is_hidden:
                continue
            label = _("Delete") if name == DELETION_FIELD_NAME else field.label
            field.widget.attrs["aria-label"] = _("%(field)s, %(row)s") % {"field": capfirst(label), "row": row}


class OpeningRuleInline(admin.TabularInline):
    model = OpeningRule
    formset = RowLabelledInlineFormSet
    template = "admin/edit_inline/tabular_named.html"
    extra = 0
    fields = ["language", "weekday", "opens_at", "closes_at", "agents", "valid_from", "valid_until"]


@admin.register(ServiceLine)
class ServiceLineAdmin(StrictAdminMixin, admin.ModelAdmin):
    list_display = ["name_fi", "name_sv", "name_en", "partner_appointment_minutes", "is_active", "position"]
    list_filter = ["is_active"]
    search_fields = ["name_fi", "name_sv", "name_en"]
    inlines = [OpeningRuleInline]


@admin.register(OpeningRule)
class OpeningRuleAdmin(StrictAdminMixin, admin.ModelAdmin):
    list_display = ["service_line", "language", "weekday", "opens_at", "closes_at", "agents", "valid_from"]
    list_display += ["valid_until"]
    list_filter = ["service_line", "language", "weekday"]
    list_select_related = ["service_line"]


@admin.register(ClosedDay)
class ClosedDayAdmin(StrictAdminMixin, admin.ModelAdmin):
    list_display = ["date_from", "date_until", "reason"]
    date_hierarchy = "date_from"


class SlotForm(forms.ModelForm):
    class Meta:
        model = Slot
        fields = ["service_line", "language", "starts_at", "ends_at", "capacity"]

    def clean_capacity(self) -> int:
        """The service's floor (`slot_capacity_check`); the admin saves in the same transaction, under its lock."""
        capacity = self.cleaned_data["capacity"]
        if self.instance.pk is not None:
            try:
                services.slot_capacity_check(slot_id=self.instance.pk, capacity=capacity)
            except services.BookingError as error:
                raise ValidationError(error.message) from None
        return capacity


@admin.register(Slot)
class SlotAdmin(StrictAdminMixin, admin.ModelAdmin):
    form = SlotForm
    list_display = ["starts_at", "ends_at", "service_line", "language", "capacity", "taken_display", "set_by_hand"]
    list_filter = ["service_line", "language", "set_by_hand"]
    date_hierarchy = "starts_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Slot]:
        return super().get_queryset(request).select_related("service_line").with_taken(now=clock.now())

    def get_readonly_fields(self, request: HttpRequest, obj: Slot | None = None) -> list[str]:
        # Moving a slot would move its bookings silently: only the capacity of an existing slot is editable.
        return ["service_line", "language", "starts_at", "ends_at"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Slot, form: forms.ModelForm, change: bool) -> None:
        # FPA's decision outlives the nightly generation, which would otherwise put the rules' capacity back.
        obj.set_by_hand = True
        super().save_model(request, obj, form, change)

    @admin.display(description=_("places taken"), ordering="taken")
    def taken_display(self, obj: Slot) -> int:
        """Confirmed bookings and unexpired holds: what the booking services count against the capacity."""
        return obj.taken

    def get_urls(self) -> list:
        return [
            path(
                "capacity-and-demand/",
                self.admin_site.admin_view(require_safe(self.capacity_demand_view)),
                name="bookings_capacity_demand",
            ),
            *super().get_urls(),
        ]

    def has_capacity_demand_permission(self, request: HttpRequest) -> bool:
        """Those who set capacity (the slots' view permission: the capacity administrators) and superusers."""
        return request.user.has_perm(f"{self.opts.app_label}.{get_permission_codename('view', self.opts)}")

    def capacity_demand_view(self, request: HttpRequest) -> HttpResponse:
        """Read-only charts of how full the coming weeks are and of what is booked, each with its numbers as a table
        and as CSV (`?csv=<chart>`). Counts only (bookings/insights.py)."""
        if not self.has_capacity_demand_permission(request):
            raise PermissionDenied
        now = clock.now()
        today = timezone.localtime(now, SERVICE_TIMEZONE).date()
        lines = list(ServiceLine.objects.order_by("position", "name_fi"))
        form = InsightsForm(
            request.GET, lines=lines, charts=insights.CHARTS, default_period=insights.default_period(today)
        )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Capacity and demand"),
            "opts": self.opts,
            "form": form,
        }
        if not form.is_valid():
            return TemplateResponse(request, "admin/bookings/capacity_demand.html", context, status=400)
        data = form.cleaned_data
        query = insights.InsightsQuery(
            today=today,
            period_start=data["start"],
            period_end=data["end"],
            service_line=data["service_line"],
            language=data["language"],
        )
        found = insights.capacity_and_demand(query=query, now=now, lines=lines)
        if data["csv"]:
            return _csv_response(found.table(data["csv"]), today=today)
        query_string = request.GET.copy()
        query_string.pop("csv", None)
        context |= {"insights": found, "query": query, "filters": query_string.urlencode()}
        return TemplateResponse(request, "admin/bookings/capacity_demand.html", context)


@admin.register(Customer)
class CustomerAdmin(StrictAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Names only: never the identity code, no register contact details, and not who has non-disclosure (a list of
    the people under a safety risk is no one's work here)."""

    list_display = ["first_name", "last_name", "source"]
    list_filter = ["source"]
    fields = ["first_name", "last_name", "source", "created_at", "updated_at"]
    readonly_fields = fields
    exclude = ["identity_code", "phone", "email", "non_disclosure"]


class CancelForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for cancelling"),
        help_text=_("Kept with each booking. The customer gets a cancellation message if an e-mail was given."),
        max_length=200,
        widget=forms.TextInput(attrs={"size": 60}),
    )


class CallListForm(forms.Form):
    date = BoundedDateField(required=False)


@admin.register(Booking)
class BookingAdmin(StrictAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: bookings change only through the booking services (here, the cancel action).

    The customer's identity code is in no list, page or search: bookings are found by reference.
    """

    list_display = ["reference", "starts_display", "line_display", "language_display", "status", "channel"]
    list_display += ["organisation", "interpreter_needed"]
    list_filter = [
        ("slot__starts_at", admin.DateFieldListFilter),
        "slot__service_line",
        "slot__language",
        "status",
        "interpreter_needed",
        "channel",
        ("organisation", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["slot__service_line", "organisation"]
    date_hierarchy = "slot__starts_at"
    search_fields = ["=reference"]
    search_help_text = _("Search by booking reference, e.g. K7F-29QX.")
    fields = [
        "reference",
        "slot_display",
        "status",
        "customer",
        "channel",
        "organisation",
        "booked_by_display",
        "interpreter_needed",
        "interpreter_language_display",
        "contact_phone_display",
        "contact_email",
        "description",
        "hold_expires_at",
        "created_at",
        "confirmed_at",
        "cancelled_at",
        "cancelled_by",
        "cancellation_reason",
    ]
    readonly_fields = fields
    actions = ["cancel_bookings"]
    change_list_template = "admin/bookings/booking/change_list.html"

    def get_urls(self) -> list:
        return [
            path(
                "call-list/",
                self.admin_site.admin_view(require_safe(self.call_list_view)),
                name="bookings_booking_call_list",
            ),
            *super().get_urls(),
        ]

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        """A reference finds its booking however typed (`k7f29qx`, ` K7F-29QX `), through the reference's unique
        index: references are stored in upper case, so an exact match serves where `iexact` would scan every row."""
        term = search_term.strip().upper()
        if not term:
            return queryset, False
        if len(term) == 7 and "-" not in term:
            term = f"{term[:3]}-{term[3:]}"
        return queryset.filter(reference=term), False

    def get_fields(self, request: HttpRequest, obj: Booking | None = None) -> list[str]:
        """The customer's name only to whoever may view customers (the capacity administrators): customer service
        reads a booking for its messages, which name no customer."""
        fields = super().get_fields(request, obj)
        if request.user.has_perm("bookings.view_customer"):
            return fields
        return [name for name in fields if name != "customer"]

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        """The change permission on bookings: has_change_permission stays False (ReadOnlyAdminMixin)."""
        return request.user.has_perm(f"{self.opts.app_label}.{get_permission_codename('change', self.opts)}")

    def has_call_list_permission(self, request: HttpRequest) -> bool:
        """The day's call list (names, phones, descriptions of the matter) is the capacity administrators' work:
        it needs the right on bookings that they alone have, the cancel action's. Viewing bookings is not enough."""
        return self.has_cancel_permission(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        call_list_date = _drilled_date(request) if self.has_call_list_permission(request) else None
        return super().changelist_view(request, {**(extra_context or {}), "call_list_date": call_list_date})

    @admin.display(description=_("time"), ordering="slot__starts_at")
    def starts_display(self, obj: Booking) -> str:
        return timezone.localtime(obj.slot.starts_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description=_("service line"), ordering="slot__service_line")
    def line_display(self, obj: Booking) -> str:
        return obj.slot.service_line.name

    @admin.display(description=_("service language"), ordering="slot__language")
    def language_display(self, obj: Booking) -> str:
        return obj.slot.get_language_display()

    @admin.display(description=_("time"))
    def slot_display(self, obj: Booking) -> str:
        # Not Slot.__str__: it formats the stored UTC time.
        slot = obj.slot
        return (
            f"{timezone.localtime(slot.starts_at):%Y-%m-%d %H:%M}–{timezone.localtime(slot.ends_at):%H:%M} "
            f"{slot.service_line.name} ({slot.get_language_display()})"
        )

    @admin.display(description=_("contact phone"))
    def contact_phone_display(self, obj: Booking) -> str:
        return format_phone(obj.contact_phone)

    @admin.display(description=_("interpreter language"))
    def interpreter_language_display(self, obj: Booking) -> str:
        """The language's name in the admin's language, as the call list gives it."""
        return language_name(obj.interpreter_language) if obj.interpreter_language else ""

    @admin.display(description=_("booked by"))
    def booked_by_display(self, obj: Booking) -> str:
        return obj.booked_by.get_full_name() if obj.booked_by else ""

    @admin.action(description=_("Cancel the selected bookings"), permissions=["cancel"])
    def cancel_bookings(self, request: HttpRequest, queryset: QuerySet[Booking]) -> HttpResponse | None:
        """Ask for the reason on an intermediate page, then cancel each through `booking_cancel`."""
        selected = list(queryset.select_related("slot__service_line").order_by("slot__starts_at", "reference"))
        form = CancelForm(request.POST if "confirm" in request.POST else None)
        if form.is_bound and form.is_valid():
            cancelled = 0
            acting = acting_context(request)
            for booking in selected:
                try:
                    services.booking_cancel(acting=acting, booking_id=booking.pk, reason=form.cleaned_data["reason"])
                except (services.BookingError, ActingRefusedError) as error:
                    message = getattr(error, "message", _("You may not cancel bookings."))
                    self.message_user(request, f"{booking.reference}: {message}", messages.ERROR)
                else:
                    cancelled += 1
            self.message_user(
                request,
                ngettext("%(count)d booking cancelled.", "%(count)d bookings cancelled.", cancelled)
                % {"count": cancelled},
                messages.SUCCESS if cancelled else messages.WARNING,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Cancel bookings"),
            "opts": self.model._meta,
            "bookings": selected,
            "form": form,
            "action": "cancel_bookings",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/bookings/booking/cancel.html", context)

    def call_list_view(self, request: HttpRequest) -> HttpResponse:
        """The day's confirmed bookings in time order as CSV, for the agents who call: the customer's name, the
        languages named in the admin's language, the number as people read it. Never the identity code."""
        if not self.has_call_list_permission(request):
            return HttpResponse(status=403)
        form = CallListForm(request.GET)
        if not form.is_valid():
            return HttpResponseBadRequest(" ".join(form.errors["date"]))
        day = form.cleaned_data["date"] or clock.localnow().date()
        start = timezone.make_aware(dt.datetime.combine(day, dt.time()))  # noqa: DTZ001 - made aware here
        end = timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()))  # noqa: DTZ001
        bookings = list(
            Booking.objects.filter(status=Booking.Status.CONFIRMED, slot__starts_at__gte=start, slot__starts_at__lt=end)
            .select_related("slot__service_line", "customer")
            .order_by("slot__starts_at", "slot__service_line__position", "slot__language", "reference")
        )
        if request.method == "GET":  # names, phones and matters leave in this file: who took which day's is recorded
            staff_call_list_record(request=request, user=request.user, day=day, bookings=len(bookings))
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="call-list-{day:%Y-%m-%d}.csv"'
        response.write("\ufeff")  # Excel opens UTF-8 correctly only with a BOM
        writer = csv.writer(response)
        writer.writerow(
            [_("time"), _("reference"), _("customer"), _("service line"), _("service language")]
            + [_("interpreter language"), _("contact phone"), _("description of the matter")]
        )
        for booking in bookings:
            customer = booking.customer
            writer.writerow(
                [
                    timezone.localtime(booking.slot.starts_at).strftime("%H:%M"),
                    booking.reference,
                    csv_safe(f"{customer.first_name} {customer.last_name}".strip()),
                    csv_safe(booking.slot.service_line.name),
                    booking.slot.get_language_display(),
                    csv_safe(language_name(booking.interpreter_language) if booking.interpreter_language else ""),
                    _csv_safe_phone(format_phone(booking.contact_phone)),
                    csv_safe(booking.description),
                ]
            )
        return response


def _csv_response(table: insights.Table, *, today: dt.date) -> HttpResponse:
    """A chart's numbers exactly as its table shows them (counts only, small ones as "< 5")."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{table.slug}-{today:%Y-%m-%d}.csv"'
    response.write("\ufeff")  # Excel opens UTF-8 correctly only with a BOM
    writer = csv.writer(response)
    for row in table.csv_rows():
        writer.writerow([csv_safe(str(cell)) for cell in row])
    return response


def _csv_safe_phone(phone: str) -> str:
    """An international number starts with "+": keep it as shown rather than quoting it like a formula."""
    return phone if DISPLAYED_PHONE.fullmatch(phone) else csv_safe(phone)


def _drilled_date(request: HttpRequest) -> dt.date:
    """The day the change list is drilled down to in the date hierarchy, otherwise today: the call list's default."""
    try:
        return dt.date(
            int(request.GET["slot__starts_at__year"]),
            int(request.GET["slot__starts_at__month"]),
            int(request.GET["slot__starts_at__day"]),
        )
    except (KeyError, ValueError, OverflowError):
        return clock.localnow().date()
