"""Test overrides on top of the one settings module. Same database URL rules: DATABASE_URL picks the engine."""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
# The Suomi.fi sandbox stands in for e-Identification and Valtuudet; a public demo, so DEBUG may stay off.
os.environ.setdefault("SUOMIFI_SANDBOX", "1")
os.environ.setdefault("SUOMIFI_SANDBOX_PUBLIC_DEMO", "1")

from kelabooking.settings import *  # noqa: E402,F403
from kelabooking.settings import DATABASES  # noqa: E402

ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
SMS_BACKEND = "kelabooking.sms.LocmemBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Tests talk plain HTTP to the test client and the live server.
SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 0
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SESSION_COOKIE_NAME = "sessionid"
CSRF_COOKIE_NAME = "csrftoken"
CELERY_BROKER_URL = "memory://localhost/"
CELERY_TASK_ALWAYS_EAGER = True
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PRH_API_URL = "http://127.0.0.1:9/prh-not-configured-in-tests"

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # An in-memory test database that the live server thread shares.
    DATABASES["default"]["TEST"] = {"NAME": "file:kelabooking-tests?mode=memory&cache=shared"}

# Relying-party keys are generated per test under a temporary OIDC_RP_KEY_DIR.
OIDC_RP_GENERATE_KEYS = True

# Serve static files straight from the finders: tests never run collectstatic.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

# Fixed identity code keys for the tests (never used anywhere else): the suite writes no key files.
IDENTITY_CODE_ENCRYPTION_KEYS = ["b8ElJeUWM6nsKPy8Dvo79ST0H8UV63GQAQp6e2ctHoI="]
IDENTITY_CODE_HMAC_KEYS = ["wI7Gd5ADdjxIipapVluMLosJWs-5wiKabK8WAn_ERNM="]
IDENTITY_CODE_GENERATE_KEYS = False
