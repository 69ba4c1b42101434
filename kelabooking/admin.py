from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR, TO_FIELD_VAR, IncorrectLookupParameters
from django.contrib.admin.views.main import (
    ALL_VAR,
    ERROR_FLAG,
    IS_FACETS_VAR,
    ORDER_VAR,
    PAGE_VAR,
    SEARCH_VAR,
    ChangeList,
)
from django.contrib.auth import get_permission_codename
from django.db import DataError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.text import Truncator
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from kelabooking import clock, services
from kelabooking.models import Message, RetentionRun
from kelabooking.permissions import message_kinds_for
from kelabooking.phone import format_phone

# The change list's own parameters (ordering, page, search …): no filter on the data.
LIST_PARAMETERS = {ORDER_VAR, PAGE_VAR, SEARCH_VAR, ERROR_FLAG, ALL_VAR, TO_FIELD_VAR, IS_POPUP_VAR, IS_FACETS_VAR}


class BoundedChangeList(ChangeList):
    """Django's change list, with a date drill-down too far out for a datetime (`?created_at__year=99999999999`,
    or the last day of 9999) answered as any other bad lookup (`?e=1`) instead of an OverflowError."""

    def get_filters(self, request: HttpRequest):  # noqa: ANN201 - Django's tuple
        try:
            return super().get_filters(request)
        except OverflowError as error:
            raise IncorrectLookupParameters(error) from error

    def get_queryset(self, request: HttpRequest, exclude_parameters: list | None = None) -> QuerySet:
        queryset = super().get_queryset(request, exclude_parameters)
        if not set(self.params) - LIST_PARAMETERS:
            return queryset
        try:
            # A lookup Django accepts but the database cannot take (`?created_at__year=0`, an id past 64 bits)
            # fails only when the query runs: run it here (in a savepoint), where the change list answers bad lookups.
            with transaction.atomic():
                queryset.exists()
        except (ValueError, OverflowError, DataError) as error:
            raise IncorrectLookupParameters(error) from error
        return queryset


class DateHierarchyAdminMixin:
    """For every admin whose change list filters on dates (a `date_hierarchy`, or any date field in the query)."""

    def get_changelist(self, request: HttpRequest, **kwargs: object) -> type[ChangeList]:
        return BoundedChangeList


class ReadOnlyAdminMixin:
    """Admin for records that are written only by the system: viewable, never added, changed or deleted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(DateHierarchyAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only. Each user sees only the kinds of message they have a reason to read (permissions.message_kinds_for):
    the recipients are customers' phone numbers and e-mail addresses. A message of another kind is answered as one
    that does not exist."""

    class KindFilter(admin.ChoicesFieldListFilter):
        """The kinds the user may read only: no filter link, nor facet count, for messages they never see."""

        def __init__(self, field, request, params, model, model_admin, field_path) -> None:  # noqa: ANN001 - Django's
            super().__init__(field, request, params, model, model_admin, field_path)
            self.kinds = message_kinds_for(request.user)

        def choices(self, changelist: ChangeList):  # noqa: ANN201 - Django's generator of dicts
            choices = super().choices(changelist)
            yield next(choices)  # "All"
            for (kind, _label), choice in zip(self.field.flatchoices, choices, strict=True):
                if kind in self.kinds:
                    yield choice

    list_display = ["created_at", "kind", "channel", "recipient_display", "language", "status", "attempts", "sent_at"]
    list_display += ["error"]
    list_filter = ["status", ("kind", KindFilter), "channel", "language"]
    search_fields = ["recipient", "subject"]
    date_hierarchy = "created_at"
    actions = ["resend"]
    # The change page shows every column read-only, the recipient in the form the list shows it.
    fields = [
        "recipient_display" if field.name == "recipient" else field.name
        for field in Message._meta.fields
        if field.name != "id"
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        """Everything the admin shows of messages comes from here: the list, its search, filters, facet counts and
        date hierarchy, the change and history pages, and the rows an action gets."""
        queryset = super().get_queryset(request)
        if request.user.is_active and request.user.is_superuser:
            return queryset
        return queryset.filter(kind__in=message_kinds_for(request.user))

    def has_resend_permission(self, request: HttpRequest) -> bool:
        """*Resend* needs the change permission. has_change_permission stays False (ReadOnlyAdminMixin), so that the
        change page stays read-only and no form ever saves a message over what the worker wrote."""
        return request.user.has_perm(f"{self.opts.app_label}.{get_permission_codename('change', self.opts)}")

    @admin.display(description=_("recipient"), ordering="recipient")
    def recipient_display(self, message: Message) -> str:
        """A phone number in the one form numbers are shown in (kelabooking/phone.py); an address as it is."""
        return format_phone(message.recipient) if message.channel == Message.Channel.SMS else message.recipient

    @admin.display(description=_("last error"), ordering="last_error")
    def error(self, message: Message) -> str:
        return Truncator(message.last_error).chars(160)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        """Above the list: how many messages wait to be sent and how long the oldest has waited (a stuck queue)."""
        pending = self.get_queryset(request).filter(status=Message.Status.PENDING)
        oldest = pending.order_by("created_at").values_list("created_at", flat=True).first()
        context = {
            "pending_count": pending.count(),
            "oldest_pending_age": timesince(oldest, now=clock.now()) if oldest else "",
        }
        return super().changelist_view(request, extra_context={**context, **(extra_context or {})})

    @admin.action(description=_("Resend the selected failed messages"), permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        """A failed message whose recipient and texts the retention job erased is skipped, and said so."""
        failed = queryset.filter(status=Message.Status.FAILED)
        queued = [pk for pk in failed.values_list("pk", flat=True) if services.message_resend(message_id=pk)]
        self.message_user(
            request,
            ngettext("%(count)d message queued again.", "%(count)d messages queued again.", len(queued))
            % {"count": len(queued)},
            messages.SUCCESS,
        )
        erased = failed.exclude(erased_at=None).count()
        if erased:
            self.message_user(
                request,
                ngettext(
                    "%(count)d message was not queued again: its recipient and texts were erased after the "
                    "retention period.",
                    "%(count)d messages were not queued again: their recipients and texts were erased after the "
                    "retention period.",
                    erased,
                )
                % {"count": erased},
                messages.WARNING,
            )


@admin.register(RetentionRun)
class RetentionRunAdmin(DateHierarchyAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """What each run of the retention job removed or erased (kelabooking/retention.py), read-only."""

    list_display = ["started_at", "finished_at", "dry_run", "expired_holds", "contacts_erased", "customers_removed"]
    list_display += ["messages_erased", "sessions_cleared", "audit_events_removed"]
    list_filter = ["dry_run"]
    date_hierarchy = "started_at"
    readonly_fields = [field.name for field in RetentionRun._meta.fields]
