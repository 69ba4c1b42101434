"""Logging filter that masks Finnish personal identity codes in every record that leaves the process.

Code must not log identity codes in the first place; this is the safety net for a message or traceback that
slips one through (for example a value echoed by a third-party library).
"""

from __future__ import annotations

import logging
import re

# DDMMYY, century sign (old and 2023 forms), individual number, check character.
IDENTITY_CODE_RE = re.compile(r"\b\d{6}[-+ABCDEFUVWXY]\d{3}[0-9A-Y]\b", re.IGNORECASE)
MASK = "[identity code]"


def mask_identity_codes(text: str) -> str:
    return IDENTITY_CODE_RE.sub(MASK, text)


class MaskIdentityCodesFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_identity_codes(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = mask_identity_codes(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
