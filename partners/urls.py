from __future__ import annotations

from django.urls import path

from partners import views

app_name = "partners"

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("logged-out/", views.logged_out_view, name="logged-out"),
    path("session-expired/", views.session_expired_view, name="session-expired"),
    path("new-customer/", views.new_customer_view, name="new-customer"),
    path("work/", views.work_view, name="work"),
    path("work/organisation/", views.organisation_choose_view, name="organisation-choose"),
    path("terms/", views.terms_view, name="terms"),
]
