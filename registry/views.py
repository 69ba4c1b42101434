from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import get_language
from django.views.decorators.http import require_http_methods, require_safe

from kelabooking.ratelimit import rate_limit_exceeded, rate_limit_reached
from registry.forms import RegistrationRequestForm
from registry.services import RegistryError, registration_request_submit


@require_http_methods(["GET", "HEAD", "POST"])
def registration_request_view(request: HttpRequest) -> HttpResponse:
    # The refusal page for an organisation not in the registry links here with its name and Y-tunnus filled in.
    initial = {name: request.GET.get(name, "")[:200] for name in ("business_id", "organisation_name")}
    form = RegistrationRequestForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST":
        # Only accepted submissions and refusals for abuse count towards the limit: someone correcting their
        # mistakes, or colleagues behind one office address, are not locked out by validation errors.
        limit = {"scope": "registration-request", "limit": settings.REGISTRATION_REQUEST_RATE_LIMIT}
        window = settings.REGISTRATION_REQUEST_RATE_WINDOW_SECONDS
        if rate_limit_reached(request, **limit):
            return render(request, "registry/request_rate_limited.html", status=429)
        if form.filled_by_a_robot:  # the honeypot: nothing is saved, and the robot is not told why
            rate_limit_exceeded(request, **limit, window_seconds=window)
            return redirect("registry:request-sent")
        if form.is_valid():
            if rate_limit_exceeded(request, **limit, window_seconds=window):
                return render(request, "registry/request_rate_limited.html", status=429)
            form.cleaned_data.pop("website")
            try:
                registration_request_submit(**form.cleaned_data, language=get_language())
            except RegistryError as error:
                form.add_error(None, error.message)
            else:
                return redirect("registry:request-sent")
    return render(request, "registry/request.html", {"form": form})


@require_safe
def registration_request_sent_view(request: HttpRequest) -> HttpResponse:
    return render(request, "registry/request_sent.html")
