"""Suomi.fi sign-ins counted for the metrics (kelabooking_sign_ins_total) by outcome and reason, against a provider
at the protocol level."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from tests.partners.provider import FakeProvider, finish_login, start_login

pytestmark = pytest.mark.django_db


def sign_ins(outcome: str, reason: str) -> float:
    return REGISTRY.get_sample_value("kelabooking_sign_ins_total", {"outcome": outcome, "reason": reason}) or 0.0


def test_sign_in__succeeded__counted(client, op: FakeProvider) -> None:
    before = sign_ins("succeeded", "")
    assert finish_login(client, start_login(client, op)).status_code == 302
    assert sign_ins("succeeded", "") == before + 1


def test_sign_in__token_endpoint_error__counted_as_failed_with_its_reason(client, op: FakeProvider) -> None:
    op.token_status = 500
    before, succeeded = sign_ins("failed", "token_refused"), sign_ins("succeeded", "")
    assert finish_login(client, start_login(client, op)).status_code == 400
    assert sign_ins("failed", "token_refused") == before + 1
    assert sign_ins("succeeded", "") == succeeded


def test_sign_in__cancelled_at_provider__counted_as_failed_cancelled(client, op: FakeProvider) -> None:
    before = sign_ins("failed", "cancelled")
    params = start_login(client, op)
    assert client.get("/oidc/callback/", {"error": "access_denied", "state": params["state"]}).status_code == 400
    assert sign_ins("failed", "cancelled") == before + 1
