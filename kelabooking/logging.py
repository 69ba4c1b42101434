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

import contextvars
import datetime as dt
import json
import logging
import logging.config
import os
import re
from typing import Any

from gunicorn.glogging import Logger as GunicornBaseLogger

# DDMMYY, century sign (old and 2023 forms, or a URL-encoded `-` or `+`), individual number, check character. Not
# inside a word or number (a hex id, a UUID), but after `_`, an escaped character (`\x00`, `\u0000`, `\n`) or a
# URL-encoded one (`%3D`): a NUL escaped in front of a code in a traceback's repr hid it from a word boundary.
IDENTITY_CODE_RE = re.compile(
    r"(?:(?<![A-Z0-9])|(?<=\\x[0-9A-F]{2})|(?<=\\u[0-9A-F]{4})|(?<=\\[0abfnrtv])|(?<=%[0-9A-F]{2}))"
    r"\d{6}(?:[-+ABCDEFUVWXY]|%2D|%2B)\d{3}[0-9A-Y](?![0-9A-Z])",
    re.IGNORECASE,
)
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


# --- Request ids: the request's (kelabooking.middleware.RequestIdMiddleware), or in a Celery worker the id of the
# request that queued the task (kelabooking/celery.py carries it in the task's headers).
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def current_request_id() -> str:
    return request_id_var.get()


def forget_request_id(**kwargs: Any) -> None:
    """Django's `request_finished`: the lines a process logs between requests name none."""
    request_id_var.set("")


def _task() -> tuple[str, str]:
    """The Celery task this process is running, as (name, id), or empty strings."""
    from celery import current_task

    task = current_task
    if not task or task.request.id is None or task.request.is_eager:
        return "", ""
    return task.name or "", task.request.id or ""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message (masked when the record was made),
    request_id, and in a worker the task's name and id; a traceback as `exception`. Formatted only when a record is
    emitted."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": current_request_id(),
        }
        task_name, task_id = _task()
        if task_id:
            line["task"], line["task_id"] = task_name, task_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The plain format for development, with the request id when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = current_request_id()
        return f"{text} [{request_id}]" if request_id else text


def formatter(log_format: str) -> logging.Formatter:
    """The formatter LOG_FORMAT names: json or text."""
    if log_format == "json":
        return JsonFormatter()
    return TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")


def use_formatter(logger: logging.Logger, log_format: str) -> None:
    """Put LOG_FORMAT's formatter on every handler of `logger` (Celery's, gunicorn's: installed after Django's)."""
    for handler in logger.handlers:
        handler.setFormatter(formatter(log_format))


# Probes answered every few seconds: not worth an access log line while they succeed (kelabooking/probes.py).
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class GunicornLogger(GunicornBaseLogger):
    """gunicorn's logger (`logger_class` in kelabooking/gunicorn.conf.py): no access line for a probe that succeeded,
    and LOG_FORMAT's formatter (JSON by default in production) on its error and access logs."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        log_format = os.environ.get("LOG_FORMAT") or ("text" if _env_debug() else "json")
        use_formatter(self.error_log, log_format)
        use_formatter(self.access_log, log_format)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if environ.get("PATH_INFO") in QUIET_PATHS and (getattr(resp, "status_code", None) or 500) < 400:
            return
        # The request's id for the JSON line: the response carries it (RequestIdMiddleware), the context no longer.
        request_id = next((value for name, value in resp.headers if name.lower() == "x-request-id"), "")
        token = request_id_var.set(request_id)
        try:
            super().access(resp, req, environ, request_time)
        finally:
            request_id_var.reset(token)


def _env_debug() -> bool:
    return os.environ.get("DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}
