"""Masks for personal data in every log record a process makes: identity codes, phone numbers, e-mail addresses.

Code must not log personal data in the first place; this is the safety net for a message or traceback that slips
one through: a value echoed by a third-party library, or a request line whose query string carries what a staff
user searched for (`/admin/kelabooking/message/?q=%2B358401234567`).

The masks are applied when a record is made (a log-record factory), not by a filter on some handler: the handlers
change from process to process (Celery's worker and beat replace the root logger's handlers with their own and send
`print` to a logger; gunicorn's access log has a handler of its own), the factory stays. `configure` installs it
wherever Django sets up logging (settings.LOGGING_CONFIG), which every process of ours does; gunicorn's config
installs it too, for the lines its master logs before that.
"""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Any

# DDMMYY, century sign (old and 2023 forms), individual number, check character.
IDENTITY_CODE_RE = re.compile(r"\b\d{6}[-+ABCDEFUVWXY]\d{3}[0-9A-Y]\b", re.IGNORECASE)
MASK = "[identity code]"

# An address, plain or URL-encoded (`liisa%40example.org`, `liisa%2Bkela%40example.org`).
EMAIL_RE = re.compile(r"(?:[\w.+-]|%[0-9A-F]{2})+(?:@|%40)[\w-]+(?:\.[\w-]+)+", re.IGNORECASE)
EMAIL_MASK = "[e-mail address]"

# A number as people type it: international (`+358 40 123 4567`, `%2B358…`, `00358…`) or Finnish national
# (`040 123 4567`, `09-1234567`), of 6 to 14 digits after the `+` or 7 to 15 from the `0`, with single spaces or
# hyphens between the groups (in a query string also `+` and `%20`). Not inside a word or number (request ids, task
# ids, byte counts), not a business ID (`0201256-6`, public), and not a time, date or duration (dots and colons
# never join the groups).
PHONE_RE = re.compile(
    r"(?:(?<![\w.-])|(?<=%20))"
    r"(?!\d{7}-\d(?![\w-]))"
    r"(?:(?:\+|%2B|00)[1-9]|0[1-9])"
    r"(?:(?:[ +-]|%20)?\d){5,13}"
    r"(?![\w-])",
    re.IGNORECASE,
)
PHONE_MASK = "[phone number]"


def mask_identity_codes(text: str) -> str:
    return IDENTITY_CODE_RE.sub(MASK, text)


def mask_personal_data(text: str) -> str:
    """The text with every identity code, e-mail address and phone number replaced by a mask."""
    text = mask_identity_codes(text)
    text = EMAIL_RE.sub(EMAIL_MASK, text)
    return PHONE_RE.sub(PHONE_MASK, text)


def mask_record(record: logging.LogRecord) -> None:
    """Mask the record's message (its arguments merged in) and traceback in place."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError, KeyError):
        # A bad format string: its parts as text (masked below), rather than break the caller or print them raw.
        message = f"{record.msg} {record.args!r}"
        record.msg, record.args = message, None
    masked = mask_personal_data(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = mask_personal_data(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None


def install_mask() -> None:
    """Make every log record of this process masked as it is made (once per process, however often called)."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "masks_personal_data", False):
        return

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        mask_record(record)
        return record

    masked_record.masks_personal_data = True
    logging.setLogRecordFactory(masked_record)


def configure(config: dict[str, Any]) -> None:
    """settings.LOGGING_CONFIG: the masks, then settings.LOGGING."""
    install_mask()
    logging.config.dictConfig(config)
