"""Form fields every app shares at its input boundary."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from kelabooking.validators import EARLIEST_DATE, LATEST_DATE, OUT_OF_RANGE


class BoundedDateField(forms.DateField):
    """An ISO date (YYYY-MM-DD) between EARLIEST_DATE and LATEST_DATE: `0001-01-01` or `9999-12-31` is the field's
    error, never an overflow further on."""

    default_error_messages = {
        "invalid": _("Give the date in the form YYYY-MM-DD."),
        "out_of_range": OUT_OF_RANGE,
    }

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("input_formats", ["%Y-%m-%d"])
        super().__init__(**kwargs)

    def to_python(self, value: object) -> dt.date | None:
        date = super().to_python(value)
        if date is not None and not EARLIEST_DATE <= date <= LATEST_DATE:
            raise ValidationError(self.error_messages["out_of_range"], code="out_of_range")
        return date
