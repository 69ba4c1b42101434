"""The bare floor's settings (bench/http_booking.py): bench/settings.py's database, cache, sessions and users, but
only Django's own session, CSRF and authentication middleware, and no URL but the floor. The app's floor beside it
prices the app's own per-request layer (security headers, locale, request ids, the input boundary, the partner
timeout, CSP, messages)."""

from bench.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls_bare"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
# The admin stays installed (the app's models are the same) but is not served here: its middleware check is moot.
SILENCED_SYSTEM_CHECKS = ["admin.E409"]
