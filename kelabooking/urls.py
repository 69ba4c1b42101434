from __future__ import annotations

from django.conf.urls.i18n import i18n_patterns
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

from kelabooking import views

admin.site.site_header = _("Kela partner booking: administration")
admin.site.site_title = _("Kela partner booking")

urlpatterns = [
    path("healthz", views.healthz_view, name="healthz"),
    path("admin/", admin.site.urls),
]

urlpatterns += i18n_patterns(
    path("", views.start_view, name="start"),
    path("accessibility/", views.accessibility_view, name="accessibility"),
    path("privacy/", views.privacy_view, name="privacy"),
    path("login/", views.login_unavailable_view, name="login"),
    path("registry/", include("registry.urls")),
)
