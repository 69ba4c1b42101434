"""The app's URLs plus the floor: the cheapest view of ours, measured beside the booking confirm."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from kelabooking.urls import urlpatterns as app_urlpatterns
from registry.models import Organisation


def floor_view(request: HttpRequest) -> HttpResponse:
    """The same middleware stack (session, user, locale, CSRF, CSP, the partner timeout), one row read by index. It
    asks who is signed in, as every page of ours does, so that the bare floor (bench/settings_bare.py), whose
    middleware would not, loads the session and the user too."""
    if not request.user.is_authenticated:
        return HttpResponse(status=403)
    name = Organisation.objects.order_by("pk").values_list("name", flat=True).first()
    return HttpResponse(name, content_type="text/plain; charset=utf-8")


urlpatterns = [path("bench/floor/", floor_view, name="bench-floor"), *app_urlpatterns]
