"""Validators every app's models share: what a form (the admin's too) refuses before a value reaches the database."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# Dates that any computation of ours (a week's Monday, the next day, a local time) can work on; anything outside is
# input error. A datetime in year 1 stored in Helsinki's time is a date before year 1 in UTC, which PostgreSQL keeps
# but no page can read back.
EARLIEST_DATE = dt.date(2000, 1, 1)
LATEST_DATE = dt.date(2099, 12, 31)
OUT_OF_RANGE = _("Give a date between 2000 and 2099.")


def validate_date_in_range(value: dt.date | dt.datetime) -> None:
    """A date, or a datetime's date as given, between EARLIEST_DATE and LATEST_DATE."""
    date = value.date() if isinstance(value, dt.datetime) else value
    if not EARLIEST_DATE <= date <= LATEST_DATE:
        raise ValidationError(OUT_OF_RANGE, code="out_of_range")
