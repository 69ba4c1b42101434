from __future__ import annotations

import contextlib
import csv

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from kelabooking.admin import ReadOnlyAdminMixin, StrictAdminMixin, csv_safe
from kelabooking.phone import format_phone
from registry import services
from registry.models import Organisation, RegistrationRequest, SyncRun
from registry.validators import normalise_business_id


class BusinessIdSearchMixin:
    """A Y-tunnus finds its row however it was typed (`02012566`, `0201256 6`, `201256-6`)."""

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        with contextlib.suppress(ValidationError):
            search_term = normalise_business_id(search_term)
        return super().get_search_results(request, queryset, search_term)


@admin.register(Organisation)
class OrganisationAdmin(StrictAdminMixin, BusinessIdSearchMixin, admin.ModelAdmin):
    list_display = ["name", "business_id", "kind", "source", "is_active", "added_at", "removed_at"]
    list_filter = ["kind", "source", "is_active"]
    search_fields = ["name", "name_sv", "business_id"]
    readonly_fields = ["source", "is_active", "added_at", "removed_at", "updated_at", "prh_company_form"]
    fields = [
        "business_id",
        "name",
        "name_sv",
        "kind",
        "email",
        "phone",
        "note",
        "source",
        "is_active",
        "added_at",
        "removed_at",
        "updated_at",
        "prh_company_form",
    ]
    actions = ["deactivate", "reactivate"]
    change_list_template = "admin/registry/organisation/change_list.html"

    def has_delete_permission(self, request: HttpRequest, obj: Organisation | None = None) -> bool:
        return False  # bookings refer to organisations: deactivate instead

    def get_readonly_fields(self, request: HttpRequest, obj: Organisation | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "business_id"] if obj is not None else fields

    def get_urls(self) -> list:
        return [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_csv_view),
                name="registry_organisation_export",
            ),
            *super().get_urls(),
        ]

    def export_csv_view(self, request: HttpRequest) -> HttpResponse:
        """The list as filtered and searched on the change list page, as CSV."""
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        try:
            queryset = self.get_changelist_instance(request).get_queryset(request)
        except IncorrectLookupParameters:  # a filter the change list does not offer: as the change list answers it
            return HttpResponseRedirect(f"{reverse('admin:registry_organisation_changelist')}?{ERROR_FLAG}=1")
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="organisations-{timezone.localdate():%Y-%m-%d}.csv"'
        response.write("\ufeff")  # Excel opens UTF-8 correctly only with a BOM
        writer = csv.writer(response)
        writer.writerow(
            [_("business ID (Y-tunnus)"), _("name"), _("Swedish name"), _("kind"), _("source"), _("active")]
            + [_("added"), _("removed"), _("contact e-mail"), _("contact phone")]
        )
        for organisation in queryset.iterator():
            writer.writerow(
                [
                    organisation.business_id,
                    csv_safe(organisation.name),
                    csv_safe(organisation.name_sv),
                    organisation.get_kind_display(),
                    organisation.get_source_display(),
                    _("yes") if organisation.is_active else _("no"),
                    timezone.localtime(organisation.added_at).strftime("%Y-%m-%d"),
                    timezone.localtime(organisation.removed_at).strftime("%Y-%m-%d") if organisation.removed_at else "",
                    csv_safe(organisation.email),
                    csv_safe(format_phone(organisation.phone)),
                ]
            )
        return response

    @admin.action(description=_("Deactivate the selected organisations"), permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Organisation]) -> None:
        changed = sum(services.organisation_deactivate(organisation=organisation) for organisation in queryset)
        self.message_user(
            request,
            ngettext("%(count)d organisation deactivated.", "%(count)d organisations deactivated.", changed)
            % {"count": changed},
            messages.SUCCESS,
        )

    @admin.action(description=_("Reactivate the selected organisations"), permissions=["change"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Organisation]) -> None:
        changed = sum(services.organisation_reactivate(organisation=organisation) for organisation in queryset)
        self.message_user(
            request,
            ngettext("%(count)d organisation reactivated.", "%(count)d organisations reactivated.", changed)
            % {"count": changed},
            messages.SUCCESS,
        )


class DecisionForm(forms.Form):
    note = forms.CharField(
        label=_("Decision note"),
        help_text=_("Sent to the contact person with the decision. Required when rejecting."),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
    )

    def __init__(self, *args, require_note: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["note"].required = require_note


@admin.register(RegistrationRequest)
class RegistrationRequestAdmin(StrictAdminMixin, BusinessIdSearchMixin, admin.ModelAdmin):
    list_display = ["created_at", "kind", "organisation_name", "business_id", "contact_name", "language", "status"]
    list_filter = ["status", "kind", "language"]
    search_fields = ["organisation_name", "business_id", "contact_name"]
    date_hierarchy = "created_at"
    actions = ["approve", "reject"]
    readonly_fields = [field.name for field in RegistrationRequest._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # requests come from the public form

    def has_delete_permission(self, request: HttpRequest, obj: RegistrationRequest | None = None) -> bool:
        return False

    @admin.action(description=_("Approve the selected requests"), permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[RegistrationRequest]) -> HttpResponse | None:
        return self._decide(request, queryset, approve=True)

    @admin.action(description=_("Reject the selected requests"), permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet[RegistrationRequest]) -> HttpResponse | None:
        return self._decide(request, queryset, approve=False)

    def _decide(
        self, request: HttpRequest, queryset: QuerySet[RegistrationRequest], *, approve: bool
    ) -> HttpResponse | None:
        """Ask for the decision note on an intermediate page, then decide each pending request."""
        pending = queryset.filter(status=RegistrationRequest.Status.PENDING)
        if not pending.exists():
            self.message_user(request, _("None of the selected requests is pending."), messages.WARNING)
            return None
        form = DecisionForm(request.POST if "confirm" in request.POST else None, require_note=not approve)
        if form.is_bound and form.is_valid():
            decided = 0
            for registration in pending:
                decide = services.registration_request_approve if approve else services.registration_request_reject
                try:
                    decide(request_id=registration.pk, decided_by=request.user, note=form.cleaned_data["note"])
                except services.RegistryError as error:
                    self.message_user(request, f"{registration}: {error.message}", messages.ERROR)
                else:
                    decided += 1
            template = (
                ngettext("%(count)d request approved.", "%(count)d requests approved.", decided)
                if approve
                else ngettext("%(count)d request rejected.", "%(count)d requests rejected.", decided)
            )
            self.message_user(request, template % {"count": decided}, messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Approve requests") if approve else _("Reject requests"),
            "opts": self.model._meta,
            "requests": pending,
            "form": form,
            "action": "approve" if approve else "reject",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/registry/registrationrequest/decide.html", context)


@admin.register(SyncRun)
class SyncRunAdmin(StrictAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["started_at", "finished_at", "status", "dry_run", "fetched"]
    list_filter = ["status", "dry_run"]
    readonly_fields = [field.name for field in SyncRun._meta.fields]
