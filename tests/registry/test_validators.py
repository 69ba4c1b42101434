from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from registry.validators import normalise_business_id


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("0201256-6", "0201256-6"),
        ("02012566", "0201256-6"),
        (" 0201256 - 6 ", "0201256-6"),
        ("201256-6", "0201256-6"),  # legacy 6-digit form, left-padded
        ("2012566", "0201256-6"),
    ],
)
def test_business_id__normalise__accepts_valid_forms(typed: str, stored: str) -> None:
    assert normalise_business_id(typed) == stored


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("0201256-7", "business_id_checksum"),
        ("FI02012566", "business_id_format"),  # a VAT number is not a Y-tunnus
        ("0201256", "business_id_checksum"),
        ("123", "business_id_format"),
        ("020125666", "business_id_format"),
        ("abcdefg-h", "business_id_format"),
        ("", "business_id_format"),
        ("<script>alert(1)</script>", "business_id_format"),
    ],
)
def test_business_id__normalise__rejects_with_a_clear_code(typed: str, code: str) -> None:
    with pytest.raises(ValidationError) as error:
        normalise_business_id(typed)
    assert error.value.code == code
