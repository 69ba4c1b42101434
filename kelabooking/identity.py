"""Finnish personal identity codes (henkilötunnus) through python-stdnum.

The separator is part of the identity since 2023 (`010190-999W` and `010190Y999W` may be two people), so it is
kept as given; only case and surrounding space are normalised. Only the canonical ASCII form is accepted: python-stdnum
takes any Unicode digit (`1٥0385-9013` would pass as a second person beside `150385-9013`). Temporary codes
(individual number 900–999) are refused unless ALLOW_TEST_IDENTITY_CODES is on.
"""

from __future__ import annotations

import datetime as dt
import re

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from stdnum import exceptions as stdnum_exceptions
from stdnum.fi import hetu

# Six digits of the birth date, the century sign of the 2023 reform, the individual number and the check character:
# ASCII only (no `re.ASCII` needed with explicit ranges).
CANONICAL = re.compile(r"[0-9]{6}[-+A-FU-Y][0-9]{3}[0-9A-Y]")


def normalise_identity_code(value: str, *, allow_temporary: bool | None = None) -> str:
    """Return the identity code in canonical form, or raise a translated ValidationError (never echoing it)."""
    allow = settings.ALLOW_TEST_IDENTITY_CODES if allow_temporary is None else allow_temporary
    code = value.strip().upper()
    if not CANONICAL.fullmatch(code):
        raise ValidationError(
            _("Enter the personal identity code in the form 131052-308T."), code="identity_code_format"
        )
    try:
        return hetu.validate(code, allow_temporary=allow)
    except stdnum_exceptions.InvalidChecksum:
        raise ValidationError(
            _("Check the last character of the personal identity code."), code="identity_code_checksum"
        ) from None
    except stdnum_exceptions.InvalidComponent:
        if not allow and _is_temporary(code):
            raise ValidationError(
                _("Temporary personal identity codes cannot be used."), code="identity_code_temporary"
            ) from None
        raise ValidationError(
            _("Check the date of birth in the personal identity code."), code="identity_code_component"
        ) from None
    except stdnum_exceptions.ValidationError:
        raise ValidationError(
            _("Enter the personal identity code in the form 131052-308T."), code="identity_code_format"
        ) from None


def _is_temporary(code: str) -> bool:
    return len(code) == 11 and code[7:10].isdigit() and code[7] == "9"


def is_test_identity_code(value: str) -> bool:
    """A valid personal identity code with a temporary (900–999) individual number, exactly as written."""
    return hetu.is_valid(value, allow_temporary=True) and not hetu.is_valid(value) and value == hetu.compact(value)


_CHECK_CHARACTERS = "0123456789ABCDEFHJKLMNPRSTUVWXY"


def temporary_identity_code(index: int, *, first_birthday: dt.date) -> str:
    """The `index`-th valid identity code with a temporary individual number (900–999), born on or after
    `first_birthday`, a hundred a day: never a real person. For test data, the sandbox and the benchmarks."""
    born = first_birthday + dt.timedelta(days=index // 100)
    digits = f"{born:%d%m%y}{900 + index % 100}"
    century = "-" if born.year < 2000 else "A"
    code = f"{digits[:6]}{century}{digits[6:]}{_CHECK_CHARACTERS[int(digits) % 31]}"
    if not is_test_identity_code(code):
        raise ValueError(f"not a temporary identity code: {code}")  # a birthday before 1900 or after 2099
    return code


class IdentityCodeInput(forms.TextInput):
    """The identity code's text input. A form shown again after an error keeps what was typed (in the page's body
    only, answering the POST: never in a URL), so that the partner can correct it."""
