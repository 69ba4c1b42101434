from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from kelabooking.phone import normalise_phone
from registry.models import RegistrationRequest
from registry.validators import normalise_business_id


class RegistrationRequestForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("What is your request?"),
        choices=RegistrationRequest.Kind.choices,
        widget=forms.RadioSelect,
        initial=RegistrationRequest.Kind.ADD,
        error_messages={"required": _("Choose what you request."), "invalid_choice": _("Choose what you request.")},
    )
    business_id = forms.CharField(
        label=_("Business ID (Y-tunnus)"),
        help_text=_("For example 1234567-8."),
        max_length=20,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "inputmode": "text"}),
        error_messages={"required": _("Give the organisation's business ID (Y-tunnus).")},
    )
    organisation_name = forms.CharField(
        label=_("Organisation name"),
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
        error_messages={"required": _("Give the organisation's name.")},
    )
    justification = forms.CharField(
        label=_("Justification"),
        help_text=_(
            "Why does your organisation need to book telephone times for its customers? At most 2000 characters."
        ),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 5}),
        error_messages={"required": _("Tell us why the organisation needs to book telephone times.")},
    )
    contact_name = forms.CharField(
        label=_("Contact person's name"),
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
        error_messages={"required": _("Give the contact person's name.")},
    )
    contact_email = forms.EmailField(
        label=_("Contact person's e-mail"),
        required=False,
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    contact_phone = forms.CharField(
        label=_("Contact person's telephone"),
        help_text=_("Give an e-mail address, a telephone number or both."),
        required=False,
        max_length=30,
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
    )

    # A honeypot: hidden from people (and from screen readers), filled in by form-filling robots. A filled one is
    # refused as abuse without saying so, and counts towards the rate limit.
    website = forms.CharField(
        label=_("Leave this field empty"),
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}),
    )

    @property
    def filled_by_a_robot(self) -> bool:
        return bool(self.data.get("website", "").strip())

    def clean_business_id(self) -> str:
        return normalise_business_id(self.cleaned_data["business_id"])

    def clean_contact_phone(self) -> str:
        phone = self.cleaned_data["contact_phone"].strip()
        return normalise_phone(phone) if phone else ""

    def clean(self) -> dict:
        cleaned = super().clean()
        no_contact = not cleaned.get("contact_email") and not cleaned.get("contact_phone")
        if no_contact and not self.has_error("contact_email") and not self.has_error("contact_phone"):
            # On the e-mail field, so the error summary links to a field and the field announces it.
            self.add_error(
                "contact_email",
                ValidationError(
                    _("Give an e-mail address or a telephone number so that we can tell you the decision."),
                    code="contact_missing",
                ),
            )
        return cleaned
