"""Telephone numbers through `phonenumbers`: Finnish by default, international accepted, stored as E.164."""

from __future__ import annotations

import phonenumbers
from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

DEFAULT_REGION = "FI"


def normalise_phone(value: str, *, region: str = DEFAULT_REGION) -> str:
    """Return the number in E.164 (`+358401234567`), or raise a translated ValidationError."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as error:
        raise ValidationError(
            _("Enter a telephone number, for example 040 123 4567 or +46 70 123 45 67."), code="phone_format"
        ) from error
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(
            _("This telephone number does not exist. Check the number and the country code."), code="phone_invalid"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def format_phone(e164: str) -> str:
    """The one form a number is shown in to people (pages, form fields, admin, call list, messages): national for
    Finnish numbers (`040 1234567`), international otherwise (`+46 70 123 45 67`).

    Anything that is not a valid E.164 number (older data, a number typed with an error) is shown as it is.
    """
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    if not phonenumbers.is_valid_number(number):
        return e164
    if phonenumbers.region_code_for_number(number) == DEFAULT_REGION:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


class PhoneField(forms.CharField):
    """A telephone number field: shows a stored number in `format_phone`'s form and cleans what is typed to E.164."""

    def prepare_value(self, value: object) -> object:
        return format_phone(value) if isinstance(value, str) else value

    def clean(self, value: object) -> str:
        cleaned = super().clean(value)
        return normalise_phone(cleaned) if cleaned else cleaned
