"""Validators every app's models share: what a form (the admin's too) refuses before a value reaches the database."""

from __future__ import annotations

import datetime as dt
import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# Dates that any computation of ours (a week's Monday, the next day, a local time) can work on; anything outside is
# input error. A datetime in year 1 stored in Helsinki's time is a date before year 1 in UTC, which PostgreSQL keeps
# but no page can read back.
EARLIEST_DATE = dt.date(2000, 1, 1)
LATEST_DATE = dt.date(2099, 12, 31)
OUT_OF_RANGE = _("Give a date between 2000 and 2099.")

# Control characters no text of ours takes (an address, a query parameter, a name from an identity provider): NUL,
# which PostgreSQL refuses in any text, and the rest of C0 but tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def has_control_characters(value: str) -> bool:
    return bool(_CONTROL.search(value))


def validate_date_in_range(value: dt.date | dt.datetime) -> None:
    """A date, or a datetime's date as given, between EARLIEST_DATE and LATEST_DATE."""
    date = value.date() if isinstance(value, dt.datetime) else value
    if not EARLIEST_DATE <= date <= LATEST_DATE:
        raise ValidationError(OUT_OF_RANGE, code="out_of_range")
