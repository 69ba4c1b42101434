from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views import defaults
from django.views.decorators.http import require_safe


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
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")


def server_error_view(request: HttpRequest) -> HttpResponse:
    """The translated 500 page in the site's layout; Django's own (the same template without the request's context)
    if even that fails."""
    try:
        return render(request, "500.html", status=500)
    except Exception:
        return defaults.server_error(request)
