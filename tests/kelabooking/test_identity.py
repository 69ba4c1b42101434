"""Temporary (test) identity codes: the made-up people of the test data, the sandbox and the benchmarks."""

from __future__ import annotations

import datetime as dt

import pytest

from kelabooking.identity import is_test_identity_code, temporary_identity_code


def test_temporary_identity_code__a_hundred_a_day__valid_temporary_and_distinct() -> None:
    codes = [temporary_identity_code(index, first_birthday=dt.date(1999, 12, 31)) for index in range(250)]

    assert len(set(codes)) == 250
    assert all(is_test_identity_code(code) for code in codes)
    assert (codes[0], codes[99], codes[100], codes[249]) == (
        "311299-900" + codes[0][-1],
        "311299-999" + codes[99][-1],
        "010100A900" + codes[100][-1],
        "020100A949" + codes[249][-1],
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("010594Y9021", True),
        ("131052-308T", False),  # a real person's number range
        ("010594y9021", False),  # not as written canonically
        ("010594Y9022", False),  # wrong check character
    ],
)
def test_is_test_identity_code__only_valid_temporary_codes_as_written(code: str, expected: bool) -> None:
    assert is_test_identity_code(code) is expected
