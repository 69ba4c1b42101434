"""Identity codes, phone numbers and e-mail addresses are masked in every log record a process makes, whichever
handler prints it."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from collections.abc import Iterator

import pytest

from kelabooking.logging import formatter as formatter_for
from kelabooking.logging import mask_identity_codes, mask_personal_data, request_id_var


@pytest.mark.parametrize("code", ["010190-999W", "010190Y999W", "010105A999P", "150399+123K", "010190-123a"])
def test_identity_code__mask__hides_every_century_sign(code: str) -> None:
    assert mask_identity_codes(f"customer {code} opened") == "customer [identity code] opened"


@pytest.mark.parametrize(
    "text",
    [
        "got '\\x00131052-308T'",  # a NUL escaped in front of it, as a traceback's repr shows it
        "id_131052-308T",
        "131052%2D308T and 131052%2b308T",  # URL-encoded century signs
        '"got \\u0000131052-308T"',  # the same in JSON
        "got '\\n131052-308T'",  # after another escape
        "next=%2Ffi%2F%3Fq%3D131052-308T",  # after a URL-encoded character
    ],
)
def test_identity_code__mask__hides_a_code_after_digits_or_encoded(text: str) -> None:
    masked = mask_identity_codes(text)
    assert "308T" not in masked
    assert "308t" not in masked
    assert "[identity code]" in masked


def test_identity_code__mask__leaves_hex_ids_alone() -> None:
    text = "request 6b1f9e2c4d5a4f0e9c8b7a6d5e4f3a2b task 04012345-6789-4012-8012-012345678901 ab131052a308c"
    assert mask_identity_codes(text) == text


def test_identity_code__mask__leaves_other_numbers_alone() -> None:
    text = "business id 0201256-6, phone +358401234567, reference K7F-29QX, date 2026-11-22"
    assert mask_identity_codes(text) == text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "GET /admin/bookings/customer/?q=%2B358401234567 HTTP/1.1",
            "GET /admin/bookings/customer/?q=[phone number] HTTP/1.1",
        ),
        ("?q=%2b358401234567&o=1", "?q=[phone number]&o=1"),
        ("?q=040+123+4567", "?q=[phone number]"),
        ("?q=Liisa%20040%20123%204567", "?q=Liisa%20[phone number]"),
        ("?q=+358401234567", "?q=[phone number]"),
        ("call 040 123 4567.", "call [phone number]."),
        ("call 040-1234567", "call [phone number]"),
        ("call 09 1234567", "call [phone number]"),
        ("call +358 40 123 4567 or +46 70 123 45 67", "call [phone number] or [phone number]"),
        ("call 00358401234567", "call [phone number]"),
        ("to=+358401234567", "to=[phone number]"),
    ],
)
def test_phone_number__mask__hides_typed_and_url_encoded_forms(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("?q=liisa@example.org", "?q=[e-mail address]"),
        ("?q=liisa.tavallinen%40example.org&o=1", "?q=[e-mail address]&o=1"),
        ("?q=liisa%2Bkela%40mail.example.fi", "?q=[e-mail address]"),
        ("sent to Liisa.T-avallinen+kela@sub.example.org.", "sent to [e-mail address]."),
    ],
)
def test_email_address__mask__hides_plain_and_url_encoded_forms(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "business id 0201256-6, reference K7F-29QX",
        "date 2026-11-22, 2026-12-03 10:15:00,123, at 09.00, 9.00-15.00, 09:00, T10:00:00+02:00",
        '10.0.0.1:8000 "GET /fi/bookings/12345/ HTTP/1.1" 304 0 0.001234s "3f2a0b1c9d8e4f00a1b2c3d4e5f60718"',
        "Task kelabooking.tasks.send_messages_task[04012345-6789-4012-8012-012345678901] succeeded in 0.0015s",
        "celery@worker1 ready, 3 messages sent, 1234567 bytes, message kelabooking-123",
    ],
)
def test_personal_data__mask__leaves_references_times_and_ids_alone(text: str) -> None:
    assert mask_personal_data(text) == text


def test_personal_data__mask__identity_codes_before_phone_numbers() -> None:
    assert mask_personal_data("010190-999W, 040 765 4321") == "[identity code], [phone number]"


@pytest.fixture
def handler_of_its_own() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger with a handler installed after Django set up logging, as Celery's worker and beat install theirs."""
    logger = logging.getLogger("kelabooking.tests.own-handler")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def test_logging__handler_of_its_own__masks_message_arguments_and_tracebacks(handler_of_its_own) -> None:
    logger, stream = handler_of_its_own
    logger.warning("lookup failed for %s, phone %s, e-mail %s", "010190-999W", "+358401234567", "liisa@example.org")
    try:
        raise ValueError("bad code 010190Y999W")
    except ValueError:
        logger.exception("crash")

    output = stream.getvalue()
    assert "lookup failed for [identity code], phone [phone number], e-mail [e-mail address]" in output
    assert "ValueError: bad code [identity code]" in output
    for shown in ("010190-999W", "010190Y999W", "+358401234567", "liisa@example.org"):
        assert shown not in output


def test_logging__arguments_that_do_not_fit_the_format__masked_and_the_caller_goes_on(handler_of_its_own) -> None:
    logger, stream = handler_of_its_own
    logger.warning("customer %s %s", "010190-999W")
    assert "010190-999W" not in stream.getvalue()
    assert "[identity code]" in stream.getvalue()


def test_runserver__request_log__masks_the_query_string() -> None:
    """runserver's request log (django.server) goes to the root handler, as every Django log does."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "stdout")
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        logging.getLogger("django.server").info(
            '"%s" %s %s', "GET /admin/bookings/customer/?q=%2B358401234567&e=liisa%40example.org HTTP/1.1", 200, 512
        )
    finally:
        handler.setStream(previous)
    line = json.loads(stream.getvalue())
    assert line["message"] == '"GET /admin/bookings/customer/?q=[phone number]&e=[e-mail address] HTTP/1.1" 200 512'


@pytest.fixture
def root_output() -> Iterator[io.StringIO]:
    """What the root logger's handler (settings.LOGGING's `stdout`) writes."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "stdout")
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def test_logging__json_format__one_object_per_line_with_time_level_logger_and_request_id(root_output) -> None:
    """LOG_FORMAT=json (the default with DEBUG off, as in the tests): a JSON object per record, the traceback in it."""
    token = request_id_var.set("req-0123456789")
    try:
        logging.getLogger("kelabooking.tests.json").warning("customer %s\nsecond line", "010190-999W")
        try:
            raise ValueError("bad code 010190Y999W")
        except ValueError:
            logging.getLogger("kelabooking.tests.json").exception("crash")
    finally:
        request_id_var.reset(token)
    lines = root_output.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING"
    assert first["logger"] == "kelabooking.tests.json"
    assert first["message"] == "customer [identity code]\nsecond line"
    assert first["request_id"] == "req-0123456789"
    assert dt.datetime.fromisoformat(first["time"]).utcoffset() == dt.timedelta(0)
    assert "ValueError: bad code [identity code]" in second["exception"]
    assert "010190" not in root_output.getvalue()


@pytest.mark.django_db
def test_request__log_lines__carry_the_request_id(client, root_output) -> None:
    """A line logged while a request is answered names the request's id (X-Request-ID, echoed in the response)."""
    response = client.get("/fi/no-such-page/", headers={"X-Request-ID": "probe-request-42"})
    assert response["X-Request-ID"] == "probe-request-42"
    lines = [json.loads(line) for line in root_output.getvalue().splitlines()]
    not_found = [line for line in lines if line["logger"] == "django.request"]
    assert not_found, lines
    assert {line["request_id"] for line in not_found} == {"probe-request-42"}
    assert request_id_var.get() == ""  # and no later line outside the request carries it


def test_text_format__names_the_request_id_when_there_is_one() -> None:
    formatter = formatter_for("text")
    record = logging.LogRecord("kelabooking.x", logging.INFO, __file__, 1, "hello", None, None)
    assert formatter.format(record).endswith("INFO kelabooking.x hello")
    token = request_id_var.set("req-1")
    try:
        assert formatter.format(record).endswith("INFO kelabooking.x hello [req-1]")
    finally:
        request_id_var.reset(token)
