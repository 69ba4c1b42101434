from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from bookings.languages import interpreter_language_choices
from bookings.models import SERVICE_LANGUAGES, ServiceLine
from kelabooking.forms import BoundedDateField
from kelabooking.identity import IdentityCodeInput, normalise_identity_code
from kelabooking.phone import PhoneField

# The capacity and demand view's period: its grouped counts read at most this many days of bookings.
INSIGHTS_LONGEST_PERIOD_DAYS = 366


class CustomerForm(forms.Form):
    identity_code = forms.CharField(
        label=_("Customer's personal identity code"),
        help_text=_("For example 131052-308T."),
        max_length=20,
        error_messages={"required": _("Enter the customer's personal identity code.")},
        widget=IdentityCodeInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"}),
    )

    def clean_identity_code(self) -> str:
        return normalise_identity_code(self.cleaned_data["identity_code"])


class ServiceLineChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: ServiceLine) -> str:
        return obj.name


class DescribedRadioSelect(forms.RadioSelect):
    """Radios that may each point to a note beside them (`described_by`: the option's value → the note's id), so that
    a screen reader reads the note with the option."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.described_by: dict[str, str] = {}

    def create_option(self, *args: object, **kwargs: object) -> dict:
        option = super().create_option(*args, **kwargs)
        if (note := self.described_by.get(str(option["value"]))) is not None:
            option["attrs"] = {**option["attrs"], "aria-describedby": note}
        return option


class MatterForm(forms.Form):
    service_line = ServiceLineChoiceField(
        label=_("What is the matter?"),
        queryset=ServiceLine.objects.filter(is_active=True),
        widget=DescribedRadioSelect,
        empty_label=None,
        error_messages={"required": _("Choose the matter."), "invalid_choice": _("Choose the matter.")},
    )
    language = forms.ChoiceField(
        label=_("In which language does Kela call?"),
        choices=SERVICE_LANGUAGES,
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose the language."), "invalid_choice": _("Choose the language.")},
    )
    interpreter_needed = forms.ChoiceField(
        label=_("Does the customer need an interpreter?"),
        choices=[("no", _("No")), ("yes", _("Yes"))],
        widget=forms.RadioSelect,
        initial="no",
    )
    interpreter_language = forms.ChoiceField(
        label=_("Interpreter's language"),
        help_text=_("Only when an interpreter is needed."),
        required=False,
    )

    def __init__(self, *args: object, notes: dict[int, str] | None = None, **kwargs: object) -> None:
        """`notes`: the id of the note beside each matter that has one (service line id → element id)."""
        super().__init__(*args, **kwargs)
        self.fields["interpreter_language"].choices = [("", _("Choose a language")), *interpreter_language_choices()]
        self.fields["service_line"].widget.described_by = {str(pk): note for pk, note in (notes or {}).items()}

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("interpreter_needed") == "yes" and not cleaned.get("interpreter_language"):
            self.add_error("interpreter_language", _("Choose the interpreter's language."))
        if cleaned.get("interpreter_needed") != "yes":
            cleaned["interpreter_language"] = ""
        return cleaned


class WeekForm(forms.Form):
    """The time picker's `?week=`: any day of the week to show."""

    week = BoundedDateField(required=False)


class SlotForm(forms.Form):
    slot = forms.IntegerField(
        label=_("Time"),
        min_value=1,
        error_messages={"required": _("Choose a time."), "invalid": _("Choose a time.")},
    )


class ConfirmForm(forms.Form):
    """The check page's form: the hold it shows, and the key that makes a double submit book once."""

    hold = forms.IntegerField(min_value=1)
    idempotency_key = forms.UUIDField()


class ContactForm(forms.Form):
    first_name = forms.CharField(
        label=_("Customer's first name"),
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        error_messages={"required": _("Give the customer's first name.")},
    )
    last_name = forms.CharField(
        label=_("Customer's last name"),
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        error_messages={"required": _("Give the customer's last name.")},
    )
    phone = PhoneField(
        label=_("Telephone number Kela calls"),
        help_text=_("A Finnish number such as 040 123 4567, or an international number starting with +."),
        max_length=30,
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "tel"}),
        error_messages={"required": _("Give the telephone number Kela calls.")},
    )
    email = forms.EmailField(
        label=_("Customer's e-mail"),
        help_text=_("The confirmation is sent here."),
        required=False,
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    description = forms.CharField(
        label=_("What does the customer want to discuss?"),
        help_text=_("Briefly, so that Kela can prepare. At most 500 characters."),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 4, "maxlength": 500}),
    )

    def __init__(self, *args: object, names_required: bool, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if not names_required:
            del self.fields["first_name"]
            del self.fields["last_name"]


class CancelForm(forms.Form):
    reason = forms.CharField(label=_("Reason for cancelling"), required=False, max_length=200, widget=forms.TextInput())


class InsightsForm(forms.Form):
    """The capacity and demand view's filters (GET): the period of the tables of languages and of who books, and the
    service line and service language of every chart. Empty is all; the period defaults to the last twelve weeks."""

    start = BoundedDateField(label=_("Period from"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = BoundedDateField(label=_("Period until"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    service_line = forms.TypedChoiceField(label=_("Service line"), required=False, coerce=int, empty_value=None)
    language = forms.ChoiceField(
        label=_("Service language"), required=False, choices=[("", _("All languages")), *SERVICE_LANGUAGES]
    )
    csv = forms.ChoiceField(required=False, choices=[("", "")], widget=forms.HiddenInput)

    def __init__(
        self, *args: object, lines: list[ServiceLine], charts: list[str], default_period: tuple, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lines = {line.pk: line for line in lines}
        self.default_period = default_period
        self.fields["service_line"].choices = [("", _("All service lines"))] + [(line.pk, line.name) for line in lines]
        self.fields["service_line"].error_messages["invalid_choice"] = _("Choose a service line from the list.")
        self.fields["language"].error_messages["invalid_choice"] = _("Choose a language from the list.")
        self.fields["csv"].choices = [("", ""), *((chart, chart) for chart in charts)]
        self.fields["start"].widget.attrs["placeholder"] = default_period[0].isoformat()
        self.fields["end"].widget.attrs["placeholder"] = default_period[1].isoformat()

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        start = cleaned.get("start") or self.default_period[0]
        end = cleaned.get("end") or self.default_period[1]
        if start > end:
            self.add_error("end", _("The end of the period cannot be before its start."))
        elif (end - start).days >= INSIGHTS_LONGEST_PERIOD_DAYS:
            self.add_error("start", _("Choose a period of at most a year."))
        cleaned["start"], cleaned["end"] = start, end
        cleaned["service_line"] = self.lines.get(cleaned.get("service_line"))
        return cleaned
