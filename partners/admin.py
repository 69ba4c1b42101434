from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db.models import Max, Min, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from kelabooking import crypto
from kelabooking.admin import ReadOnlyAdminMixin, StrictAdminMixin
from kelabooking.identity import IdentityCodeInput, normalise_identity_code
from partners.models import AuditEvent, Notice, RemovedAuditEvents, User
from partners.staff.services import staff_customer_search_record


@admin.register(User)
class UserAdmin(StrictAdminMixin, DjangoUserAdmin):
    list_display = ["username", "first_name", "last_name", "is_staff", "is_partner_display"]

    @admin.display(description=_("partner"), boolean=True)
    def is_partner_display(self, obj: User) -> bool:
        return obj.is_partner


admin.site.unregister(Group)  # django.contrib.auth's registration: again here, with the project's change list


@admin.register(Group)
class GroupAdmin(StrictAdminMixin, DjangoGroupAdmin):
    """The staff groups (kelabooking/permissions.py) as Django's admin shows them."""


class ActorFilter(admin.SimpleListFilter):
    title = _("actor")
    parameter_name = "actor"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        # order_by(): the model's default ordering would otherwise join the DISTINCT and repeat each actor.
        actors = AuditEvent.objects.exclude(actor=None).order_by().values_list("actor_id", "actor_name").distinct()
        return sorted(((str(pk), name or f"#{pk}") for pk, name in actors), key=lambda item: item[1])

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(actor_id=self.value()) if self.value() else queryset


class OrganisationFilter(admin.SimpleListFilter):
    title = _("organisation")
    parameter_name = "organisation"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        organisations = (
            AuditEvent.objects.exclude(organisation_business_id="")
            .order_by()
            .values_list("organisation_business_id", "organisation_name")
            .distinct()
        )
        return sorted({business_id: f"{name} ({business_id})" for business_id, name in organisations}.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(organisation_business_id=self.value()) if self.value() else queryset


class CustomerSearchForm(forms.Form):
    identity_code = forms.CharField(
        label=_("Customer's personal identity code"),
        max_length=20,
        widget=IdentityCodeInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def clean_identity_code(self) -> str:
        return normalise_identity_code(self.cleaned_data["identity_code"], allow_temporary=True)


# Neither the partner's encrypted code nor the customer's keyed index on an event's page: the index names one person
# for as long as the trail keeps their events (after the customer is removed too); it is used only through the form.
AUDIT_EVENT_HIDDEN = ("actor_identity_code", "customer_digest")


@admin.register(AuditEvent)
class AuditEventAdmin(StrictAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only. 'Who handled this customer' is a POST form, so the identity code never enters a URL."""

    list_display = ["created_at", "action", "outcome", "actor_name", "organisation_name", "customer", "request_id"]
    list_filter = ["action", "outcome", ActorFilter, OrganisationFilter, ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["customer"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in AuditEvent._meta.fields if field.name not in AUDIT_EVENT_HIDDEN]
    exclude = list(AUDIT_EVENT_HIDDEN)
    change_list_template = "admin/partners/auditevent/change_list.html"
    show_full_result_count = False

    def get_urls(self) -> list:
        return [
            path(
                "customer/",
                self.admin_site.admin_view(require_http_methods(["GET", "HEAD", "POST"])(self.customer_search_view)),
                name="partners_auditevent_customer",
            ),
            *super().get_urls(),
        ]

    def customer_search_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        form = CustomerSearchForm(request.POST if request.method == "POST" else None)
        events = removed = None
        if form.is_bound and form.is_valid():
            # Through the keyed index of the events themselves: one index scan, and the events stay findable after
            # the retention job has removed the customer.
            code = form.cleaned_data["identity_code"]
            digests = crypto.digests(code)
            events = AuditEvent.objects.filter(customer_digest__in=digests).select_related("actor", "booking")
            removed = RemovedAuditEvents.objects.filter(customer_digest__in=digests).aggregate(
                events=Sum("events"), oldest=Min("oldest"), newest=Max("newest")
            )
            events = list(events)  # before this look-up's own event, which is recorded next
            staff_customer_search_record(request=request, user=request.user, identity_code=code)
            form = CustomerSearchForm()  # do not echo the code back into the page
        context = {
            **self.admin_site.each_context(request),
            "title": _("Who handled this customer"),
            "opts": self.model._meta,
            "form": form,
            "events": events,
            "removed": removed,
        }
        return TemplateResponse(request, "admin/partners/auditevent/customer_search.html", context)


class NoticeForm(forms.ModelForm):
    class Meta:
        model = Notice
        fields = ["level", "text_fi", "text_sv", "text_en", "valid_from", "valid_until"]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # The admin's split date and time inputs come with bare "Date:" and "Time:" texts, not labels: name each.
        for name in ("valid_from", "valid_until"):
            field = self.fields[name]
            if isinstance(field.widget, forms.MultiWidget):
                date, time = field.widget.widgets
                label = capfirst(field.label)
                date.attrs["aria-label"] = _("%(field)s: date") % {"field": label}
                time.attrs["aria-label"] = _("%(field)s: time") % {"field": label}

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("valid_from") and cleaned.get("valid_until") and cleaned["valid_until"] <= cleaned["valid_from"]:
            raise ValidationError({"valid_until": _("The notice must end after it starts.")})
        return cleaned


@admin.register(Notice)
class NoticeAdmin(StrictAdminMixin, admin.ModelAdmin):
    form = NoticeForm
    list_display = ["text_en", "level", "valid_from", "valid_until"]
    list_filter = ["level"]
    date_hierarchy = "valid_from"
