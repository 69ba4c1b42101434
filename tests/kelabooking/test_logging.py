"""Identity codes are masked in every log record that leaves the process, through the configured handler."""

from __future__ import annotations

import io
import logging

import pytest

from kelabooking.logging import MaskIdentityCodesFilter, mask_identity_codes


@pytest.mark.parametrize("code", ["010190-999W", "010190Y999W", "010105A999P", "150399+123K", "010190-123a"])
def test_identity_code__mask__hides_every_century_sign(code: str) -> None:
    assert mask_identity_codes(f"customer {code} opened") == "customer [identity code] opened"


def test_identity_code__mask__leaves_other_numbers_alone() -> None:
    text = "business id 0201256-6, phone +358401234567, reference K7F-29QX, date 2026-11-22"
    assert mask_identity_codes(text) == text


def test_logging__root_handler__masks_message_arguments_and_tracebacks() -> None:
    handler = next(
        h for h in logging.getLogger().handlers if any(isinstance(f, MaskIdentityCodesFilter) for f in h.filters)
    )
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        logger = logging.getLogger("kelabooking.tests")
        logger.warning("lookup failed for %s", "010190-999W")
        try:
            raise ValueError("bad code 010190Y999W")
        except ValueError:
            logger.exception("crash")
    finally:
        handler.setStream(previous)
    output = stream.getvalue()
    assert "010190-999W" not in output
    assert "010190Y999W" not in output
    assert output.count("[identity code]") >= 2
    assert "ValueError" in output
