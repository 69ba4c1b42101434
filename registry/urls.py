from __future__ import annotations

from django.urls import path

from registry import views

app_name = "registry"

urlpatterns = [
    path("request/", views.registration_request_view, name="request"),
    path("request/sent/", views.registration_request_sent_view, name="request-sent"),
]
