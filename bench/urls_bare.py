"""The bare floor's only URL (bench/settings_bare.py): the same floor view as the app's (bench/urls.py), plus the
health check that gunicorn's start-up waits for."""

from django.urls import path

from bench.urls import floor_view
from kelabooking import views

urlpatterns = [path("bench/floor/", floor_view, name="bench-floor"), path("healthz", views.healthz_view)]
