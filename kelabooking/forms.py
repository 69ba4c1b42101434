"""Form fields every app shares at its input boundary."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils.translation import gettext_lazy as _

from kelabooking.validators import validate_date_in_range


class BoundedDateField(forms.DateField):
    """An ISO date (YYYY-MM-DD) in 2000-2099 (`validate_date_in_range`): `0001-01-01` or `9999-12-31` is the field's
    error, never an overflow further on."""

    default_error_messages = {
        "invalid": _("Give the date in the form YYYY-MM-DD."),
    }

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("input_formats", ["%Y-%m-%d"])
        super().__init__(**kwargs)

    def to_python(self, value: object) -> dt.date | None:
        date = super().to_python(value)
        if date is not None:
            validate_date_in_range(date)
        return date
