"""kelabooking.E020 and E021: with DEBUG off, no message backend prints or files what it sends."""

from __future__ import annotations

import pytest

from kelabooking.checks import check_message_backends

DELIVERING = {
    "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
    "SMS_BACKEND": "kelabooking.sms.HttpGatewayBackend",
}


@pytest.mark.parametrize(
    "backend", ["django.core.mail.backends.console.EmailBackend", "django.core.mail.backends.filebased.EmailBackend"]
)
def test_message_backends__console_or_file_email_with_debug_off__refused(settings, backend: str) -> None:
    settings.DEBUG = False
    settings.SMS_BACKEND = DELIVERING["SMS_BACKEND"]
    settings.EMAIL_BACKEND = backend
    assert [message.id for message in check_message_backends()] == ["kelabooking.E020"]
    assert all(message.is_serious() for message in check_message_backends())


def test_message_backends__console_sms_with_debug_off__refused_in_a_public_demo_too(settings) -> None:
    settings.DEBUG = False
    settings.SUOMIFI_SANDBOX_PUBLIC_DEMO = True
    settings.EMAIL_BACKEND = DELIVERING["EMAIL_BACKEND"]
    settings.SMS_BACKEND = "kelabooking.sms.ConsoleBackend"
    assert [message.id for message in check_message_backends()] == ["kelabooking.E021"]
    assert all(message.is_serious() for message in check_message_backends())


def test_message_backends__relay_and_gateway_with_debug_off__accepted(settings) -> None:
    settings.DEBUG = False
    settings.EMAIL_BACKEND = DELIVERING["EMAIL_BACKEND"]
    settings.SMS_BACKEND = DELIVERING["SMS_BACKEND"]
    assert check_message_backends() == []


def test_message_backends__console_with_debug_on__accepted(settings) -> None:
    settings.DEBUG = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    settings.SMS_BACKEND = "kelabooking.sms.ConsoleBackend"
    assert check_message_backends() == []
