"""Y-tunnus (Finnish business id) handling, on top of python-stdnum."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from stdnum import exceptions as stdnum_exceptions
from stdnum.fi import ytunnus


def normalise_business_id(value: str) -> str:
    """Return the canonical `NNNNNNN-N` form, or raise a translated ValidationError.

    Spaces and the hyphen are optional, and a legacy 6-digit id (`123456-7`) is left-padded with a zero. A VAT
    number (`FI…`) or anything else that is not digits is refused rather than silently converted.
    """
    compact = "".join(value.split()).replace("-", "")
    # ASCII digits only: str.isdigit() takes any script's digits, which would name the same organisation twice.
    if not (compact.isascii() and compact.isdigit()) or len(compact) not in (7, 8):
        raise ValidationError(_("Enter the business ID (Y-tunnus) in the form 1234567-8."), code="business_id_format")
    compact = compact.zfill(8)
    try:
        ytunnus.validate(compact)
    except stdnum_exceptions.InvalidChecksum as error:
        raise ValidationError(
            _("Check the last digit of the business ID (Y-tunnus)."), code="business_id_checksum"
        ) from error
    except stdnum_exceptions.ValidationError as error:
        raise ValidationError(
            _("Enter the business ID (Y-tunnus) in the form 1234567-8."), code="business_id_format"
        ) from error
    return ytunnus.format(compact)


def validate_business_id(value: str) -> None:
    if normalise_business_id(value) != value:
        raise ValidationError(_("Store the business ID in the form 1234567-8."), code="business_id_not_normalised")
