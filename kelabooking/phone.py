"""Telephone numbers through `phonenumbers`: Finnish by default, international accepted, stored as E.164."""

from __future__ import annotations

import phonenumbers
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
    """Human-readable form of a stored number: national for Finnish numbers, international otherwise."""
    if not e164:
        return ""
    number = phonenumbers.parse(e164, None)
    if phonenumbers.region_code_for_number(number) == DEFAULT_REGION:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
