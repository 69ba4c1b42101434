"""The sandbox, mounted at /sandbox/ (not language-prefixed): the OpenID providers (Suomi.fi, and Kela's staff
identity provider) and the Valtuudet stand-in."""

from __future__ import annotations

from django.urls import path

from partners.sandbox import views

app_name = "sandbox"

urlpatterns = [
    # OpenID provider: the issuer is settings.OIDC_OP_ISSUER, {SUOMIFI_SANDBOX_BASE_URL}/sandbox/oidc.
    path("oidc/.well-known/openid-configuration", views.oidc_discovery_view, name="oidc-discovery"),
    path("oidc/jwks", views.oidc_jwks_view, name="oidc-jwks"),
    path("oidc/authorize", views.oidc_authorize_view, name="oidc-authorize"),
    path("oidc/token", views.oidc_token_view, name="oidc-token"),
    path("oidc/userinfo", views.oidc_userinfo_view, name="oidc-userinfo"),
    path("oidc/logout", views.oidc_logout_view, name="oidc-logout"),
    # The staff mode: Kela's identity provider for FPA staff, settings.STAFF_OIDC_OP_ISSUER (`/sandbox/staff-oidc`).
    path("staff-oidc/.well-known/openid-configuration", views.staff_discovery_view, name="staff-discovery"),
    path("staff-oidc/jwks", views.staff_jwks_view, name="staff-jwks"),
    path("staff-oidc/authorize", views.staff_authorize_view, name="staff-authorize"),
    path("staff-oidc/token", views.staff_token_view, name="staff-token"),
    path("staff-oidc/userinfo", views.staff_userinfo_view, name="staff-userinfo"),
    path("staff-oidc/logout", views.staff_logout_view, name="staff-logout"),
    # Valtuudet: the real paths below settings.VALTUUDET_BASE_URL, {SUOMIFI_SANDBOX_BASE_URL}/sandbox/valtuudet.
    path(
        "valtuudet/service/ypa/user/register/<str:client_id>/<str:identity_code>",
        views.valtuudet_register_view,
        name="valtuudet-register",
    ),
    path("valtuudet/oauth/authorize", views.valtuudet_authorize_view, name="valtuudet-authorize"),
    path("valtuudet/oauth/token", views.valtuudet_token_view, name="valtuudet-token"),
    path(
        "valtuudet/service/ypa/api/organizationRoles/<str:session_id>",
        views.valtuudet_organization_roles_view,
        name="valtuudet-organization-roles",
    ),
    path(
        "valtuudet/service/ypa/user/unregister/<str:session_id>",
        views.valtuudet_unregister_view,
        name="valtuudet-unregister",
    ),
]
