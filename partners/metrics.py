"""The partners app's metrics (kelabooking/metrics.py): Suomi.fi sign-ins by outcome and reason."""

from __future__ import annotations

from kelabooking import metrics

SIGN_INS = metrics.counter(
    "sign_ins_total",
    "Suomi.fi sign-ins, by outcome (succeeded, failed) and for a failure its reason (the login_failed audit event's: "
    "cancelled, state_missing, provider_unreachable, token_refused, invalid_token, missing_claim, …).",
    ["outcome", "reason"],
)


def sign_in_succeeded() -> None:
    SIGN_INS.labels("succeeded", "").inc()


def sign_in_failed(reason: str) -> None:
    SIGN_INS.labels("failed", reason).inc()
