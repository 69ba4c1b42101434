"""Shared fixtures, and the rule for marked tests: skip locally with a reason, fail in CI (CI=true)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from urllib.parse import urlparse

import hypothesis
import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import translation

from kelabooking.sms import LocmemBackend

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Property tests (tests/test_properties.py): a bounded, repeatable run by default and in CI; `make fuzz` runs the
# long one (HYPOTHESIS_PROFILE=fuzz).
hypothesis.settings.register_profile("ci", max_examples=15, derandomize=True, deadline=None, print_blob=True)
hypothesis.settings.register_profile("fuzz", max_examples=1500, deadline=None, print_blob=True)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def _port_open(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def _unavailable(marker: str) -> str | None:
    if marker == "postgres" and connection.vendor != "postgresql":
        return "needs PostgreSQL: set DATABASE_URL=postgres://... (tests run on SQLite now)"
    if marker == "redis" and not _port_open(REDIS_URL, 6379):
        return f"needs Redis at {REDIS_URL} (set REDIS_URL)"
    if marker == "gettext" and not shutil.which("xgettext"):
        return "needs GNU gettext's xgettext (apt-get install gettext)"
    if marker == "kustomize" and not (shutil.which("kustomize") or shutil.which("kubectl")):
        return "needs kustomize or kubectl (which has kustomize built in) to render deploy/kubernetes/overlays"
    if marker == "browser":
        if not shutil.which(CHROMIUM):
            return f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            return "needs the playwright package"
    if marker == "replicas":
        from tests.replicas import missing_parts

        return missing_parts()
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in ("postgres", "redis", "browser", "gettext", "kustomize", "replicas"):
        if item.get_closest_marker(marker) is None:
            continue
        reason = _unavailable(marker)
        if reason is None:
            continue
        if IN_CI:
            pytest.fail(f"CI=true and this {marker} test cannot run: {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    cache.clear()
    LocmemBackend.outbox.clear()
    # English, the source language, outside requests (the project default is Finnish); requests pick their own.
    with translation.override("en"):
        yield


@pytest.fixture(scope="session")
def rp_key_dir(tmp_path_factory: pytest.TempPathFactory):
    """One folder for the generated RSA keys of a test run: slow to generate, never written into the repository."""
    return tmp_path_factory.mktemp("rp-keys")


@pytest.fixture(autouse=True)
def _relying_party_keys(settings, rp_key_dir) -> Iterator[None]:
    from partners import keys

    settings.OIDC_RP_KEY_DIR = rp_key_dir
    keys.signing_key.cache_clear()
    keys.encryption_key.cache_clear()
    yield
    keys.signing_key.cache_clear()
    keys.encryption_key.cache_clear()


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


class _SmtpSink:
    """Collects what a real SMTP conversation delivered (aiosmtpd), parsed as e-mail messages."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        import email
        from email import policy

        message = email.message_from_bytes(envelope.content, policy=policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_sink(settings):
    """A real SMTP server on a free loopback port, with Django's SMTP backend pointed at it."""
    from aiosmtpd.controller import Controller

    handler = _SmtpSink()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.port = port
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield handler
    controller.stop()


@pytest.fixture
def superuser_client(client):
    """The test client signed in to the admin as a superuser."""
    from tests.factories import UserFactory

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client
