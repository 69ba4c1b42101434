"""Error tracking sends no personal data: the scrubber on an event as the SDK builds it, the traces sampler, and a
process with SENTRY_DSN sending to a real HTTP endpoint."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from kelabooking.sentry import scrub_breadcrumb, scrub_event, traces_sampler

ROOT = Path(__file__).resolve().parents[2]
CODE, PHONE, EMAIL = "010190-999W", "+358401234567", "liisa.tavallinen@example.org"


def event() -> dict:
    """An error event as sentry-sdk's Django integration shapes it, personal data in every place it can hide."""
    return {
        "level": "error",
        "logentry": {"message": "customer %s not found", "params": [CODE]},
        "message": f"lookup failed for {CODE}",
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "value": f"bad customer {CODE}, phone {PHONE}, e-mail {EMAIL}",
                    "stacktrace": {"frames": [{"function": "confirm", "vars": {"phone": PHONE}}]},
                }
            ]
        },
        "breadcrumbs": {"values": [{"category": "query", "message": f"SELECT … WHERE email = '{EMAIL}'"}]},
        "request": {
            "url": "https://ajanvaraus.kela.example/admin/bookings/customer/",
            "method": "GET",
            "query_string": "q=040+123+4567&e=liisa%40example.org",
            "headers": {"Authorization": "Bearer secret-token", "Cookie": "sessionid=abc", "Referer": f"/x?c={CODE}"},
            "cookies": {"sessionid": "abc"},
            "data": {"identity_code": CODE},
            "env": {"REMOTE_ADDR": "192.0.2.1"},
        },
        "user": {"id": "7", "ip_address": "192.0.2.1", "username": CODE},
        "extra": {"customer": [CODE, {"phone": PHONE}]},
        "tags": {"email": EMAIL},
    }


def test_sentry__scrub_event__no_identity_code_phone_email_credential_or_user_left() -> None:
    scrubbed = scrub_event(event(), {})
    text = json.dumps(scrubbed)
    for personal in (
        CODE,
        PHONE,
        EMAIL,
        "040+123+4567",
        "liisa%40example.org",
        "secret-token",
        "sessionid",
        "192.0.2.1",
    ):
        assert personal not in text
    assert "user" not in scrubbed
    assert scrubbed["exception"]["values"][0]["value"] == (
        "bad customer [identity code], phone [phone number], e-mail [e-mail address]"
    )
    assert scrubbed["logentry"]["params"] == ["[identity code]"]
    assert scrubbed["request"]["query_string"] == "q=[phone number]&e=[e-mail address]"
    assert scrubbed["request"]["headers"] == {"Referer": "/x?c=[identity code]"}
    assert scrubbed["request"]["url"] == "https://ajanvaraus.kela.example/admin/bookings/customer/"


def test_sentry__scrub_breadcrumb__masked() -> None:
    crumb = scrub_breadcrumb({"category": "log", "message": f"sent to {PHONE}", "data": {"to": EMAIL}}, {})
    assert crumb == {"category": "log", "message": "sent to [phone number]", "data": {"to": "[e-mail address]"}}


def test_sentry__traces_sampler__never_the_probes_or_the_scrape() -> None:
    sample = traces_sampler(0.25)
    for path in ("/healthz", "/readyz", "/metrics"):
        assert sample({"wsgi_environ": {"PATH_INFO": path}}) == 0
    assert sample({"wsgi_environ": {"PATH_INFO": "/fi/"}}) == 0.25
    assert sample({"transaction_context": {"name": "bookings.tasks.remind_bookings_task"}}) == 0.25


SENDS = f"""
import logging, django
django.setup()
import sentry_sdk
sentry_sdk.add_breadcrumb(message="called {PHONE}")
try:
    raise ValueError("bad customer {CODE}, phone {PHONE}, e-mail {EMAIL}")
except ValueError:
    sentry_sdk.capture_exception()
sentry_sdk.flush(timeout=10)
"""


def _decoded(request) -> str:
    body = request.get_data()
    encoding = request.headers.get("Content-Encoding", "")
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "br":
        import brotli

        body = brotli.decompress(body)
    return body.decode()


def test_sentry__process_with_a_dsn__sends_the_error_without_personal_data(httpserver, tmp_path) -> None:
    httpserver.expect_request("/api/1/envelope/", method="POST").respond_with_data("{}")
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "kelabooking.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "IDENTITY_CODE_KEY_DIR": str(tmp_path),
        "OIDC_RP_KEY_DIR": str(tmp_path),
        "SENTRY_DSN": f"http://public@127.0.0.1:{httpserver.port}/1",
    }
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", SENDS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    sent = "".join(_decoded(request) for request, _ in httpserver.log)
    assert "ValueError" in sent
    assert "bad customer [identity code], phone [phone number], e-mail [e-mail address]" in sent
    assert "called [phone number]" in sent
    for personal in (CODE, PHONE, EMAIL):
        assert personal not in sent
