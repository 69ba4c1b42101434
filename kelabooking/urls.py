from __future__ import annotations

from django.conf import settings
from django.conf.urls.i18n import i18n_patterns
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

from kelabooking import views
from partners import views as partner_views
from partners.staff import views as staff_views

admin.site.site_header = _("Kela partner booking: administration")
admin.site.site_title = _("Kela partner booking")

handler500 = "kelabooking.views.server_error_view"

urlpatterns = [
    # Answered by kelabooking.probes.ProbeMiddleware before the pages' middleware; named here for reverse() and tests.
    path("healthz", views.healthz_view, name="healthz"),
    path("readyz", views.readyz_view, name="readyz"),
    path("metrics", views.metrics_view, name="metrics"),
    # Staff sign in through Kela's identity provider; the admin's sign-out ends the provider's session too.
    path("admin/logout/", staff_views.logout_view, name="staff_logout"),
    path("admin/login/", staff_views.password_login_view, name="staff_password_login"),
    path("admin/", admin.site.urls),
    path("staff/login/", staff_views.login_view, name="staff_login"),
    path("staff/logged-out/", staff_views.logged_out_view, name="staff_logged_out"),
    # The providers call back to fixed, registered addresses; the language travels in the session.
    path("oidc/callback/", partner_views.callback_view, name="oidc_authentication_callback"),
    path("staff/oidc/callback/", staff_views.callback_view, name="staff_oidc_callback"),
    path("valtuudet/callback/", partner_views.valtuudet_callback_view, name="valtuudet_callback"),
    path(".well-known/jwks.json", partner_views.jwks_view, name="jwks"),
]

urlpatterns += i18n_patterns(
    path("", views.start_view, name="start"),
    path("accessibility/", views.accessibility_view, name="accessibility"),
    path("privacy/", views.privacy_view, name="privacy"),
    path("registry/", include("registry.urls")),
    path("", include("partners.urls")),
    path("", include("bookings.urls")),
)

if settings.SUOMIFI_SANDBOX:
    # The local Suomi.fi stand-in: never installed in production (the settings refuse it with DEBUG off).
    urlpatterns.insert(0, path("sandbox/", include("partners.sandbox.urls")))
