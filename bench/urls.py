"""The app's URLs plus the floor: the cheapest view of ours, measured beside the booking."""

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.http import require_POST

from bench.models import FloorRow
from kelabooking.urls import urlpatterns as app_urlpatterns


@require_POST
def floor_view(request: HttpRequest) -> HttpResponse:
    """One small ORM insert behind the same middleware stack (session, user, locale, CSRF, CSP, the partner timeout),
    as issue 26 defines the floor: a POST, so that CSRF checks it as it does a booking's. It asks who is signed in, as
    every page of ours does, so that the bare floor (bench/settings_bare.py), whose middleware would not, loads the
    session and the user too."""
    if not request.user.is_authenticated:
        return HttpResponse(status=403)
    row = FloorRow.objects.create(user_id=request.user.pk)
    return HttpResponse(str(row.pk), content_type="text/plain; charset=utf-8")


urlpatterns = [path("bench/floor/", floor_view, name="bench-floor"), *app_urlpatterns]
