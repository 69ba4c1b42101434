"""Shared fixtures and the rule for marked tests: skip locally with a reason, fail in CI (CI=true)."""

from __future__ import annotations

import os
import shutil
import socket
from urllib.parse import urlparse

import pytest
from django.core.cache import cache
from django.db import connection

from kelabooking.sms import LocmemBackend

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
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
    if marker == "browser":
        if not shutil.which(CHROMIUM):
            return f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            return "needs the playwright package"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in ("postgres", "redis", "browser"):
        if item.get_closest_marker(marker) is None:
            continue
        reason = _unavailable(marker)
        if reason is None:
            continue
        if IN_CI:
            pytest.fail(f"CI=true and this {marker} test cannot run: {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _clean_state() -> None:
    cache.clear()
    LocmemBackend.outbox.clear()


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL
