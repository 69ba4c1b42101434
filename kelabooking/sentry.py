"""Optional error tracking with Sentry (SENTRY_DSN), sending no personal data.

`send_default_pii` stays off (no cookies, no user, no IP address), local variables and request bodies are never sent,
and `scrub_event` masks identity codes, phone numbers and e-mail addresses (kelabooking/logging.py) in every string
an event carries: messages, exception values, breadcrumbs, the request's URL, query string and headers, tags and
contexts. Traces are sampled at SENTRY_TRACES_SAMPLE_RATE, never for the probes and the metrics scrape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kelabooking.logging import QUIET_PATHS, mask_personal_data

# Request parts that are never sent, whatever the SDK collected: credentials and the session.
_DROPPED_REQUEST_KEYS = ("cookies", "data", "env")
_DROPPED_HEADERS = frozenset({"authorization", "cookie", "x-asiointivaltuudetauthorization", "proxy-authorization"})


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask_personal_data(value)
    if isinstance(value, dict):
        return {key: _scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value


def scrub_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry's `before_send` (and `before_send_transaction`): the event without personal data."""
    event.pop("user", None)
    request = event.get("request")
    if isinstance(request, dict):
        for key in _DROPPED_REQUEST_KEYS:
            request.pop(key, None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                name: value for name, value in headers.items() if name.lower() not in _DROPPED_HEADERS
            }
    return _scrub(event)


def scrub_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    return _scrub(crumb)


def traces_sampler(rate: float) -> Callable[[dict[str, Any]], float]:
    """Sentry's `traces_sampler`: no trace of a probe or a scrape; `rate` (SENTRY_TRACES_SAMPLE_RATE) of the rest."""

    def sample(sampling_context: dict[str, Any]) -> float:
        environ = sampling_context.get("wsgi_environ") or {}
        path = environ.get("PATH_INFO") or (sampling_context.get("transaction_context") or {}).get("name") or ""
        return 0.0 if path in QUIET_PATHS else rate

    return sample


def sentry_init(*, dsn: str, environment: str, traces_sample_rate: float) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrub_event,
        before_send_transaction=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
        # Without a rate no tracing at all: not even an unsampled transaction per request.
        traces_sampler=traces_sampler(traces_sample_rate) if traces_sample_rate > 0 else None,
    )
