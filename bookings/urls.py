from __future__ import annotations

from django.urls import path

from bookings import views

app_name = "bookings"

urlpatterns = [
    path("customer/", views.customer_view, name="customer"),
    path("customer/overview/", views.overview_view, name="overview"),
    path("book/", views.matter_view, name="matter"),
    path("book/time/", views.time_view, name="time"),
    path("book/contact/", views.contact_view, name="contact"),
    path("book/check/", views.check_view, name="check"),
    path("booking/<str:reference>/", views.done_view, name="done"),
    path("booking/<str:reference>/cancel/", views.cancel_view, name="cancel"),
    path("booking/<str:reference>/move/", views.move_view, name="move"),
]
