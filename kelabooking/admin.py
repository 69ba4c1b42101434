from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.exceptions import DisallowedModelAdminLookup
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_permission_codename
from django.core.exceptions import FieldDoesNotExist, ValidationError
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


def csv_safe(value: str) -> str:
    """Keep a spreadsheet from reading a cell of an admin's CSV export as a formula (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


class StrictChangeList(ChangeList):
    """Django's change list, filtering only by what its admin declares: its list filters (each takes the parameters
    of its own `expected_parameters()`), its date hierarchy's drill-down (`…__year`, `__month`, `__day`) and its
    search (`q`), besides the list's own parameters (ordering, page, facets, popup, `e`). Anything else is refused as
    Django refuses a bad filter, with `?e=1`.

    Django's `ModelAdmin.lookup_allowed` refuses only lookups across relations that no filter names (and with a 400);
    any lookup on the model's own fields gets through, hidden column or not: `?phone__startswith=%2B358401` would
    narrow the customers to those with that number, one digit at a time. It is asked before the list filters are
    built, so it cannot know their parameters: this asks afterwards, when each filter has taken its own.

    Bad values answer as bad filters too: a date drill-down too far out for a datetime (`?created_at__year=9999`), a
    custom filter's value its field cannot take (`?actor=abc`) and a lookup only the database refuses (`?…__year=0`,
    an id past 64 bits)."""

    def get_filters(self, request: HttpRequest):  # noqa: ANN201 - Django's tuple
        try:
            filters = super().get_filters(request)
        except (DisallowedModelAdminLookup, ValueError, OverflowError) as error:
            raise IncorrectLookupParameters(error) from error
        # What is left of the query string once the list filters and the date hierarchy have taken theirs.
        undeclared = set(filters[2])
        if self.date_hierarchy and f"{self.date_hierarchy}__year" in self.get_filters_params():
            undeclared -= {f"{self.date_hierarchy}__gte", f"{self.date_hierarchy}__lt"}  # the drill-down's bounds
        if undeclared:
            raise IncorrectLookupParameters(f"This list does not filter by {', '.join(sorted(undeclared))}")
        return filters

    def get_queryset(self, request: HttpRequest, exclude_parameters: list | None = None) -> QuerySet:
        try:
            queryset = super().get_queryset(request, exclude_parameters)
            if self.get_filters_params():
                # A lookup Django accepts but the database cannot take fails only when the query runs: run it here
                # (in a savepoint), where the change list answers bad lookups.
                with transaction.atomic():
                    queryset.exists()
        except (ValueError, ValidationError, OverflowError, DataError) as error:
            # Django's own list filters answer a value they cannot take so (FieldListFilter.queryset); a
            # SimpleListFilter's `queryset()` is left to raise, and is answered here the same way.
            raise IncorrectLookupParameters(error) from error
        return queryset


# Django's own words (django/contrib/admin/options.py), for a selection with no item in it.
NOTHING_SELECTED = _("Items must be selected in order to perform actions on them. No items have been changed.")


class StrictAdminMixin:
    """For every ModelAdmin of the project, Django's own included (tests/kelabooking/test_admin_filters.py walks the
    admin site for one without it): its pages take from the address only what they declare, and answer what they
    cannot take as Django answers a bad filter, never with a 500."""

    def get_changelist(self, request: HttpRequest, **kwargs: object) -> type[ChangeList]:
        return StrictChangeList

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, object]:
        """Django's initial values from the address (`add/?starts_at=…`), but those the model field cannot take: a
        date and time shown in two inputs was given the text as it came, and answered 500 (`?starts_at=0`)."""
        initial = super().get_changeform_initial_data(request)
        for name, value in list(initial.items()):
            try:
                field = self.opts.get_field(name)
            except FieldDoesNotExist:
                continue  # not a field: no form field takes it
            if not field.concrete or field.many_to_many:
                continue  # a relation from another model (no form field takes it), or ids Django has split already
            try:
                initial[name] = field.to_python(value)
            except ValidationError:
                del initial[name]
        return initial

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """Django's, but a selection with a value no id of this model can be (`_selected_action=abc`, a number beyond
        the column's range) is no selection: Django's own message, not a 500 from the query."""
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            try:
                self.opts.pk.clean(value, None)
            except ValidationError:
                self.message_user(request, NOTHING_SELECTED, messages.WARNING)
                return None
        return super().response_action(request, queryset)


class ReadOnlyAdminMixin:
    """Admin for records that are written only by the system: viewable, never added, changed or deleted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(StrictAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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
class RetentionRunAdmin(StrictAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """What each run of the retention job removed or erased (kelabooking/retention.py), read-only."""

    list_display = ["started_at", "finished_at", "dry_run", "expired_holds", "contacts_erased", "customers_removed"]
    list_display += ["messages_erased", "sessions_cleared", "audit_events_removed"]
    list_filter = ["dry_run"]
    date_hierarchy = "started_at"
    readonly_fields = [field.name for field in RetentionRun._meta.fields]
