from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, JsonResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers
from django.views import defaults
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from kelabooking import metrics, probes


@require_safe
def start_view(request: HttpRequest) -> HttpResponse:
    return render(request, "start.html")


@require_safe
def accessibility_view(request: HttpRequest) -> HttpResponse:
    return render(request, "accessibility.html", {"feedback_email": settings.ACCESSIBILITY_FEEDBACK_EMAIL})


@require_safe
def privacy_view(request: HttpRequest) -> HttpResponse:
    return render(request, "privacy.html", {"privacy_email": settings.PRIVACY_CONTACT_EMAIL})


@require_safe
def healthz_view(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. It touches nothing, so a database outage restarts no container."""
    return HttpResponse("ok", content_type="text/plain")


@require_safe
def readyz_view(request: HttpRequest) -> JsonResponse:
    """Readiness: the database and the cache answer and every migration is applied (kelabooking/probes.py). The body
    names each check's outcome, nothing more."""
    checks = probes.readiness()
    ready = all(outcome == "ok" for outcome in checks.values())
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus' scrape, with `Authorization: Bearer <METRICS_TOKEN>`; without a configured token there is no such
    page (404), and a scrape without the token gets 401."""
    if not settings.METRICS_TOKEN:  # a plain 404: the probe middleware answers before the pages' middleware ran
        return HttpResponseNotFound("not found", content_type="text/plain")
    if not metrics.scrape_authorised(request.headers.get("Authorization", "")):
        response = HttpResponse("unauthorized", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = "Bearer"
        return response
    response = HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
    add_never_cache_headers(response)
    return response


def csrf_failure_view(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a form too old (or from a browser that keeps no cookies) gets the translated page in the
    site's layout, not Django's page for developers. (No htmx request of ours posts: its partials only read.)"""
    return render(request, "403_csrf.html", status=403)


def server_error_view(request: HttpRequest) -> HttpResponse:
    """The translated 500 page in the site's layout; Django's own (the same template without the request's context)
    if even that fails."""
    try:
        return render(request, "500.html", status=500)
    except Exception:
        return defaults.server_error(request)
