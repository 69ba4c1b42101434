"""kelabooking settings: one module, every value from the environment, with embedded defaults.

The embedded default (nothing set) runs on SQLite, executes Celery tasks in-process and writes e-mail to the
console. Production sets DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY, ALLOWED_HOSTS and the e-mail settings.
Every variable is documented in docs/settings.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from kelabooking.dburl import database_config

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set SECRET_KEY (or DEBUG=1 for local development).")
    SECRET_KEY = "django-insecure-local-development-key-only-for-debug"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
CSRF_FAILURE_VIEW = "kelabooking.views.csrf_failure_view"  # translated, in the site's layout (templates/403_csrf.html)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "csp",
    # Each app after the apps it imports (tests/kelabooking/test_layering.py): their AppConfig.ready() fill
    # kelabooking's registries in this order, and `load_demo` loads their demo data in it.
    "kelabooking",
    "registry",
    "partners",
    "bookings",
]

MIDDLEWARE = [
    "kelabooking.middleware.HeadWithoutBodyMiddleware",
    # /healthz, /readyz and /metrics are answered here, before host validation and the HTTPS redirect.
    "kelabooking.probes.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "kelabooking.middleware.RequestIdMiddleware",
    "kelabooking.metrics.RequestMetricsMiddleware",
    # Outside every middleware that may query the database: its 500 becomes the 503 "please try again" page.
    "kelabooking.middleware.DatabaseUnavailableMiddleware",
    "kelabooking.middleware.ResilientSessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "kelabooking.middleware.InputBoundaryMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "partners.middleware.PartnerSessionTimeoutMiddleware",
    "partners.middleware.StaffSessionTimeoutMiddleware",
    "kelabooking.middleware.NoStoreForSignedInMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

# Browser features no page of ours uses are turned off for every page (django-permissions-policy).
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "encrypted-media",
        "fullscreen",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "publickey-credentials-get",
        "screen-wake-lock",
        "usb",
        "xr-spatial-tracking",
    )
}

ROOT_URLCONF = "kelabooking.urls"
WSGI_APPLICATION = "kelabooking.wsgi.application"
AUTH_USER_MODEL = "partners.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "kelabooking.context_processors.service",
                "kelabooking.context_processors.language_links",
                "partners.context_processors.partner",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------------
# SQLite in the embedded default: IMMEDIATE transactions serialise writers (the capacity rule relies on it) and
# WAL lets readers run beside the writer.
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
# A PostgreSQL that fails over: libpq's multi-host URL (kelabooking/dburl.py), e.g.
# postgresql://user@db1:5432,db2:5432/kelabooking?target_session_attrs=read-write&connect_timeout=3
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": database_config(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = SQLITE_OPTIONS
else:
    # A persistent connection is checked before a request reuses it: one cut by a failover or a restart is replaced.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The role web, worker and beat connect as, when it is not the owner that runs `migrate` (docs/data-protection.md,
# "Database roles"): every `migrate` grants it what the app needs, and the audit trail only to read and append
# (kelabooking/database.py).
DATABASE_APP_ROLE = env_str("DATABASE_APP_ROLE")
# With DEBUG off, web, worker and beat refuse to start as a superuser or the owner (kelabooking.E030), unless this is
# set: for benchmarks and drills that run everything as one role, never for a site.
DATABASE_OWNER_SERVES = env_bool("DATABASE_OWNER_SERVES", False)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits); Redis when REDIS_URL is set so every web process shares the counters -----------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Internationalisation -------------------------------------------------------------------------------------
LANGUAGE_CODE = "fi"
LANGUAGES = [("fi", "Suomi"), ("sv", "Svenska"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/Helsinki"
USE_I18N = True
USE_TZ = True
# Clock times as written in Finland in every language (9.00 in Finnish and Swedish, 09:00 in English).
FORMAT_MODULE_PATH = ["kelabooking.formats"]

# --- Static files ---------------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Security -------------------------------------------------------------------------------------------------
# Always on: they cost nothing on plain HTTP.
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True  # htmx sends the token from the <body> hx-headers, never from the cookie
# Off with DEBUG only, because they need HTTPS.
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 63072000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # The __Host- prefix pins the cookies to this host, HTTPS and path "/".
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# django-csp 4: no inline script or style, no eval, anywhere (htmx is configured through a <meta> tag).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'", *env_list("CSP_FORM_ACTION_EXTRA")],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    },
}

# Personal data lives in the session: keep it server-side and short. In the database alone, not Django's cached_db:
# with Redis down a partner still signs in and books (the rate limits fail open), and a sign-out or an expiry that
# deletes the row ends the session at once, with no cached copy to outlive it when Redis comes back.
SESSION_ENGINE = "partners.sessions"  # Django's database sessions, keeping a locked customer
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 10 * 60 * 60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- E-mail ---------------------------------------------------------------------------------------------------
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Kela ajanvaraus <ajanvaraus@kela.example>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Celery (tasks run eagerly in-process when no broker is configured) ---------------------------------------
CELERY_TASK_ALWAYS_EAGER = not env_str("CELERY_BROKER_URL")
# Eager tasks never reach a broker, but Celery still takes a producer from its pool: the in-memory transport keeps
# kombu from looking for a broker, and naming a host keeps it from warning that none was given.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "memory://localhost/")
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Soft shutdown (Celery 5.5+): on a cold shutdown (SIGQUIT, or SIGTERM where REMAP_SIGTERM=SIGQUIT, as the image sets)
# running tasks get this many seconds to finish; then the worker cancels them and they go back to the broker. A send
# cut short stays claimed in the outbox until MESSAGE_CLAIM_SECONDS have passed, and the sweep hands it over again
# (kelabooking/delivery.py): never sent twice under two ids, never marked without being sent. Compose and Kubernetes
# give the worker 45 s from SIGTERM to exit (docs/operations.md, "Graceful shutdown and health").
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = 20.0
# Beat touches `<schedule file>.heartbeat` at every turn of its loop (kelabooking/beat.py): health checks read its age.
CELERY_BEAT_SCHEDULER = "kelabooking.beat:HeartbeatScheduler"
# Longer than any countdown we schedule, so a delayed task is not redelivered early.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 60 * 60}
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE = {
    "sweep-messages": {"task": "kelabooking.tasks.sweep_messages_task", "schedule": 60.0},
    "generate-slots-nightly": {
        "task": "bookings.tasks.generate_slots_task",
        "schedule": crontab(hour=1, minute=15),
    },
    "sync-registry-nightly": {
        "task": "registry.tasks.sync_registry_task",
        "schedule": crontab(hour=2, minute=30),
    },
    # Each run reminds only the bookings not yet reminded, and only inside the send window below.
    "remind-bookings": {"task": "bookings.tasks.remind_bookings_task", "schedule": crontab(minute="*/10")},
    "retention-nightly": {"task": "kelabooking.tasks.retention_run_task", "schedule": crontab(hour=3, minute=45)},
}

# --- Retention (kelabooking/retention.py; docs/data-protection.md, "Retention"), in days ------------------------
# The contact details and description typed for a booking, after the call.
RETENTION_CONTACT_DAYS = env_int("RETENTION_CONTACT_DAYS", 90)
# A customer entered by a partner, after it was entered and after its last call (its bookings stay, without it).
RETENTION_CUSTOMER_DAYS = env_int("RETENTION_CUSTOMER_DAYS", 2 * 365)
# A sent message's recipient and texts, after it was sent (its status stays).
RETENTION_MESSAGE_DAYS = env_int("RETENTION_MESSAGE_DAYS", 90)
# Audit events (Act 906/2019 § 17 log data). Kela's own retention period is not public: five years by default.
RETENTION_AUDIT_DAYS = env_int("RETENTION_AUDIT_DAYS", 5 * 365 + 1)

# --- The outbox -----------------------------------------------------------------------------------------------
MESSAGE_MAX_ATTEMPTS = env_int("MESSAGE_MAX_ATTEMPTS", 8)
MESSAGE_RETRY_BASE_SECONDS = env_int("MESSAGE_RETRY_BASE_SECONDS", 30)
MESSAGE_RETRY_MAX_SECONDS = env_int("MESSAGE_RETRY_MAX_SECONDS", 60 * 60)
MESSAGE_CLAIM_SECONDS = env_int("MESSAGE_CLAIM_SECONDS", 5 * 60)
MESSAGE_SWEEP_AGE_SECONDS = env_int("MESSAGE_SWEEP_AGE_SECONDS", 60)
SMS_BACKEND = env_str(
    "SMS_BACKEND",
    "kelabooking.sms.HttpGatewayBackend" if env_str("SMS_GATEWAY_URL") else "kelabooking.sms.ConsoleBackend",
)
SMS_GATEWAY_URL = env_str("SMS_GATEWAY_URL")
SMS_GATEWAY_TOKEN = env_str("SMS_GATEWAY_TOKEN")
SMS_GATEWAY_TIMEOUT = env_int("SMS_GATEWAY_TIMEOUT", 10)
SMS_SENDER = env_str("SMS_SENDER", "Kela")

# --- Service facts shown to users -----------------------------------------------------------------------------
KELA_AUTHORITY_LINE_PHONE = env_str("KELA_AUTHORITY_LINE_PHONE", "020 692 235")
KELA_AUTHORITY_LINE_OPENS = env_str("KELA_AUTHORITY_LINE_OPENS", "9")
KELA_AUTHORITY_LINE_CLOSES = env_str("KELA_AUTHORITY_LINE_CLOSES", "15")
ACCESSIBILITY_FEEDBACK_EMAIL = env_str("ACCESSIBILITY_FEEDBACK_EMAIL", "saavutettavuus@kela.example")
PRIVACY_CONTACT_EMAIL = env_str("PRIVACY_CONTACT_EMAIL", "tietosuoja@kela.example")

# --- Registry -------------------------------------------------------------------------------------------------
PRH_API_URL = env_str("PRH_API_URL", "https://avoindata.prh.fi/opendata-ytj-api/v3")
PRH_TIMEOUT_SECONDS = env_int("PRH_TIMEOUT_SECONDS", 15)
PRH_MAX_PAGES = env_int("PRH_MAX_PAGES", 50)
REGISTRATION_REQUEST_RATE_LIMIT = env_int("REGISTRATION_REQUEST_RATE_LIMIT", 5)
REGISTRATION_REQUEST_RATE_WINDOW_SECONDS = env_int("REGISTRATION_REQUEST_RATE_WINDOW_SECONDS", 60 * 60)

# --- Logging: to stdout; identity codes, phone numbers and e-mail addresses masked ----------------------------
# kelabooking.logging.configure masks every record as it is made, in every process that sets Django up (web,
# manage.py, Celery worker and beat, whatever handlers they install), then applies LOGGING. LOG_FORMAT: `json` (one
# object per line: time, level, logger, message, request_id; the default with DEBUG off) or `text`. Celery's worker
# and beat and gunicorn's own logs get the same formatter (kelabooking/celery.py, kelabooking.logging.GunicornLogger).
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json")
if LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured("LOG_FORMAT must be json or text.")
LOGGING_CONFIG = "kelabooking.logging.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"line": {"()": "kelabooking.logging.formatter", "log_format": LOG_FORMAT}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "line"}},
    "root": {"handlers": ["stdout"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Replace Django's own handlers so every record goes through the root handler, once.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
    },
}

# --- Metrics (kelabooking/metrics.py; docs/operations.md) -----------------------------------------------------
# /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; without a token it does not exist (404). Under
# gunicorn and a prefork Celery worker set PROMETHEUS_MULTIPROC_DIR (read by prometheus-client itself) to an empty,
# writable directory of the container. With METRICS_PORT (0: none), a worker serves its own counters on that port, and
# gunicorn listens on it too and answers /metrics there alone (kelabooking/probes.py).
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_PORT = env_int("METRICS_PORT", 0)

# --- Error tracking (optional): Sentry, only with SENTRY_DSN; no personal data (kelabooking/sentry.py) -----------
SENTRY_DSN = env_str("SENTRY_DSN")
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", "development" if DEBUG else "production")
SENTRY_TRACES_SAMPLE_RATE = float(env_str("SENTRY_TRACES_SAMPLE_RATE", "0") or 0)
if SENTRY_DSN:
    from kelabooking.sentry import sentry_init

    sentry_init(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)

SERVICE_NAME = _("Book a telephone time for your customer")
NUM_PROXIES = env_int("NUM_PROXIES", 0)

# --- Partner sign-in: Suomi.fi e-Identification (OIDC) --------------------------------------------------------
# The local Suomi.fi stand-in (partners/sandbox): an OpenID provider and a Valtuudet API with test people. The
# embedded default (`make run`) turns it on. It signs anyone in as anyone, so with DEBUG off these settings refuse it
# unless the site is declared a public demo: refused here, whatever server imports them, not only in a system check.
SUOMIFI_SANDBOX = env_bool("SUOMIFI_SANDBOX", False)
SUOMIFI_SANDBOX_PUBLIC_DEMO = env_bool("SUOMIFI_SANDBOX_PUBLIC_DEMO", False)
if SUOMIFI_SANDBOX and not (DEBUG or SUOMIFI_SANDBOX_PUBLIC_DEMO):
    raise ImproperlyConfigured(
        "SUOMIFI_SANDBOX is on while DEBUG is off: the sandbox signs anyone in as anyone. Turn it off in production; "
        "for a public demonstration site with test identities set SUOMIFI_SANDBOX_PUBLIC_DEMO=1."
    )
# The demo flag lets the repository's published secrets and demo admin run (kelabooking/published.py): only on a site
# whose partners are the sandbox's test people, never on one signing real people in.
if SUOMIFI_SANDBOX_PUBLIC_DEMO and not (DEBUG or SUOMIFI_SANDBOX):
    raise ImproperlyConfigured(
        "SUOMIFI_SANDBOX_PUBLIC_DEMO is on without SUOMIFI_SANDBOX: a public demonstration site runs on the sandbox's "
        "test identities. Turn SUOMIFI_SANDBOX_PUBLIC_DEMO off in production (it would allow the repository's "
        "published secrets and its demo admin)."
    )
# (business ID, name) pairs whose booking mandate a typed test identity code holds; empty: typed codes hold none.
SUOMIFI_SANDBOX_TYPED_MANDATES: list[tuple[str, str]] = []
# Where this app is reached; the sandbox endpoints are absolute URLs under it.
SUOMIFI_SANDBOX_BASE_URL = env_str("SUOMIFI_SANDBOX_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
if SUOMIFI_SANDBOX:
    # Its dependencies are not in the production requirements (requirements/base.txt, the default image).
    try:
        import authlib  # noqa: F401 - the sandbox's OpenID provider is built on it
    except ImportError:
        raise ImproperlyConfigured(
            "SUOMIFI_SANDBOX is on, but the sandbox's dependency Authlib is not installed: the production requirements "
            "(requirements/base.txt) leave the sandbox out. Install requirements/sandbox.txt (the dev requirements "
            "include it); for a Docker image build with --build-arg REQUIREMENTS=requirements/sandbox.txt."
        ) from None
    INSTALLED_APPS.append("partners.sandbox")
_SANDBOX_OIDC = f"{SUOMIFI_SANDBOX_BASE_URL}/sandbox/oidc"

# Discovery (`.../.well-known/openid-configuration`) fills in any endpoint not given explicitly.
OIDC_OP_ISSUER = env_str("OIDC_OP_ISSUER", _SANDBOX_OIDC if SUOMIFI_SANDBOX else "")
OIDC_OP_DISCOVERY_URL = env_str(
    "OIDC_OP_DISCOVERY_URL", f"{OIDC_OP_ISSUER}/.well-known/openid-configuration" if OIDC_OP_ISSUER else ""
)
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT")
OIDC_OP_LOGOUT_ENDPOINT = env_str("OIDC_OP_LOGOUT_ENDPOINT")
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID", "kelabooking-sandbox" if SUOMIFI_SANDBOX else "")
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET", "kelabooking-sandbox-secret" if SUOMIFI_SANDBOX else "")
# client_secret_basic or private_key_jwt (the RP's public keys are published at /.well-known/jwks.json).
OIDC_RP_CLIENT_AUTH_METHOD = env_str("OIDC_RP_CLIENT_AUTH_METHOD", "client_secret_basic")
# The RP's RSA keys (PEM text, or a file path); generated under var/ when empty and the sandbox is on (and never
# read from there when generation is off).
OIDC_RP_SIGNING_KEY = env_str("OIDC_RP_SIGNING_KEY")
OIDC_RP_ENCRYPTION_KEY = env_str("OIDC_RP_ENCRYPTION_KEY")
OIDC_RP_KEY_DIR = Path(env_str("OIDC_RP_KEY_DIR", str(BASE_DIR / "var")))
OIDC_RP_GENERATE_KEYS = env_bool("OIDC_RP_GENERATE_KEYS", DEBUG or SUOMIFI_SANDBOX)
# Expect ID tokens (and signed userinfo) encrypted to the RP's encryption key (JWE). Key management RSA-OAEP-256;
# RSA-OAEP (SHA-1) only when allowed here; in either case only what the provider advertises in discovery.
OIDC_RP_ID_TOKEN_ENCRYPTED = env_bool("OIDC_RP_ID_TOKEN_ENCRYPTED", False)
OIDC_RP_JWE_ALLOW_RSA_OAEP = env_bool("OIDC_RP_JWE_ALLOW_RSA_OAEP", False)
# Send the authorization request as a signed request object (RFC 9101, `request=`); the sandbox then requires one.
OIDC_RP_REQUEST_OBJECT = env_bool("OIDC_RP_REQUEST_OBJECT", False)
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid profile")
OIDC_ACR_VALUES = env_list("OIDC_ACR_VALUES", "http://ftn.ficora.fi/2017/loa3,http://ftn.ficora.fi/2017/loa2")
OIDC_ACR_ALLOWED = env_list("OIDC_ACR_ALLOWED", "http://ftn.ficora.fi/2017/loa2,http://ftn.ficora.fi/2017/loa3")
OIDC_CLAIM_IDENTITY_CODE = env_list("OIDC_CLAIM_IDENTITY_CODE", "urn:oid:1.2.246.21,nationalIdentificationNumber")
OIDC_CLAIM_GIVEN_NAME = env_list("OIDC_CLAIM_GIVEN_NAME", "given_name,urn:oid:2.5.4.42")
OIDC_CLAIM_FAMILY_NAME = env_list("OIDC_CLAIM_FAMILY_NAME", "family_name,urn:oid:2.5.4.4")
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT", 10)
OIDC_CLOCK_SKEW_SECONDS = env_int("OIDC_CLOCK_SKEW_SECONDS", 60)
OIDC_JWKS_CACHE_SECONDS = env_int("OIDC_JWKS_CACHE_SECONDS", 60 * 60)
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_STORE_ID_TOKEN = True
OIDC_CREATE_USER = True
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
LOGIN_REDIRECT_URL = "partners:work"
# Temporary (9xx) identity codes: DVV's test people use them; never accepted in production.
ALLOW_TEST_IDENTITY_CODES = env_bool("ALLOW_TEST_IDENTITY_CODES", SUOMIFI_SANDBOX)
# Personal identity codes at rest (kelabooking/crypto.py): Fernet keys and HMAC keys, each list newest first.
# Generated once under var/ when empty and DEBUG or the sandbox is on (and never read from there otherwise);
# production refuses to start without them.
IDENTITY_CODE_ENCRYPTION_KEYS = env_list("IDENTITY_CODE_ENCRYPTION_KEYS", "")
IDENTITY_CODE_HMAC_KEYS = env_list("IDENTITY_CODE_HMAC_KEYS", "")
IDENTITY_CODE_KEY_DIR = Path(env_str("IDENTITY_CODE_KEY_DIR", str(BASE_DIR / "var")))
IDENTITY_CODE_GENERATE_KEYS = env_bool("IDENTITY_CODE_GENERATE_KEYS", DEBUG or SUOMIFI_SANDBOX)
# Each OIDC backend answers only at its own callback; passwords only for break-glass accounts in production.
AUTHENTICATION_BACKENDS = [
    "partners.suomifi.SuomiFiBackend",
    "partners.staff.oidc.StaffBackend",
    "partners.staff.passwords.BreakGlassPasswordBackend",
]

# --- Partner sign-in: Suomi.fi e-Authorizations (Valtuudet, acting for an organisation) -----------------------
VALTUUDET_BASE_URL = env_str(
    "VALTUUDET_BASE_URL", f"{SUOMIFI_SANDBOX_BASE_URL}/sandbox/valtuudet" if SUOMIFI_SANDBOX else ""
).rstrip("/")
VALTUUDET_CLIENT_ID = env_str("VALTUUDET_CLIENT_ID", "kelasbx1" if SUOMIFI_SANDBOX else "")
VALTUUDET_API_KEY = env_str("VALTUUDET_API_KEY", "kelabooking-sandbox-api-key" if SUOMIFI_SANDBOX else "")
VALTUUDET_OAUTH_PASSWORD = env_str(
    "VALTUUDET_OAUTH_PASSWORD", "kelabooking-sandbox-oauth-password" if SUOMIFI_SANDBOX else ""
)
# The mandate code Kela's rule engine returns for "Sosiaaliturvan etuusasioiden ajanvarauksen tekeminen" is not
# public (domain README §8): a setting, with the sandbox's code as default.
VALTUUDET_REQUIRED_ROLES = env_list("VALTUUDET_REQUIRED_ROLES", "SOTE_AJANVARAUS")
VALTUUDET_TIMEOUT = env_int("VALTUUDET_TIMEOUT", 10)

# --- The partner session --------------------------------------------------------------------------------------
PARTNER_IDLE_TIMEOUT_SECONDS = env_int("PARTNER_IDLE_TIMEOUT_SECONDS", 30 * 60)
PARTNER_ABSOLUTE_TIMEOUT_SECONDS = env_int("PARTNER_ABSOLUTE_TIMEOUT_SECONDS", 10 * 60 * 60)
LOGIN_URL = "partners:login"

# --- Staff sign-in: Kela's own identity provider (OIDC) for the admin (docs/operations.md, "Staff sign-in") -----
# A second OpenID Connect client, apart from the partners' Suomi.fi one: its own provider, client, callback
# (/staff/oidc/callback/), session keys and backend (partners/staff/). mozilla-django-oidc reads a STAFF_OIDC_* setting
# wherever it reads the OIDC_* one of the same name. With SUOMIFI_SANDBOX on and no provider set, the sandbox's staff
# mode stands in (partners/sandbox/staff.py), with test staff and the group claim values mapped below.
_SANDBOX_STAFF_OIDC = f"{SUOMIFI_SANDBOX_BASE_URL}/sandbox/staff-oidc"
_STAFF_SANDBOX = SUOMIFI_SANDBOX and not any(
    env_str(name)
    for name in ("STAFF_OIDC_OP_ISSUER", "STAFF_OIDC_OP_DISCOVERY_URL", "STAFF_OIDC_OP_AUTHORIZATION_ENDPOINT")
)
STAFF_OIDC_OP_ISSUER = env_str("STAFF_OIDC_OP_ISSUER", _SANDBOX_STAFF_OIDC if _STAFF_SANDBOX else "")
STAFF_OIDC_OP_DISCOVERY_URL = env_str(
    "STAFF_OIDC_OP_DISCOVERY_URL",
    f"{STAFF_OIDC_OP_ISSUER}/.well-known/openid-configuration" if STAFF_OIDC_OP_ISSUER else "",
)
STAFF_OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("STAFF_OIDC_OP_AUTHORIZATION_ENDPOINT")
STAFF_OIDC_OP_TOKEN_ENDPOINT = env_str("STAFF_OIDC_OP_TOKEN_ENDPOINT")
STAFF_OIDC_OP_USER_ENDPOINT = env_str("STAFF_OIDC_OP_USER_ENDPOINT")
STAFF_OIDC_OP_JWKS_ENDPOINT = env_str("STAFF_OIDC_OP_JWKS_ENDPOINT")
STAFF_OIDC_OP_LOGOUT_ENDPOINT = env_str("STAFF_OIDC_OP_LOGOUT_ENDPOINT")
STAFF_OIDC_RP_CLIENT_ID = env_str("STAFF_OIDC_RP_CLIENT_ID", "kelabooking-staff-sandbox" if _STAFF_SANDBOX else "")
STAFF_OIDC_RP_CLIENT_SECRET = env_str(
    "STAFF_OIDC_RP_CLIENT_SECRET", "kelabooking-staff-sandbox-secret" if _STAFF_SANDBOX else ""
)
# client_secret_basic, client_secret_post or private_key_jwt (the same RP keys as the partners' client publishes).
STAFF_OIDC_RP_CLIENT_AUTH_METHOD = env_str("STAFF_OIDC_RP_CLIENT_AUTH_METHOD", "client_secret_basic")
STAFF_OIDC_RP_SCOPES = env_str("STAFF_OIDC_RP_SCOPES", "openid profile email")
# Sent as acr_values when set (a Keycloak level of authentication, say); the MFA rule below decides regardless.
STAFF_OIDC_ACR_VALUES = env_list("STAFF_OIDC_ACR_VALUES")
# Multi-factor authentication is required: the ID token's `amr` must hold one of these, or its `acr` be one of these.
STAFF_OIDC_MFA_AMR = env_list("STAFF_OIDC_MFA_AMR", "mfa,http://schemas.microsoft.com/claims/multipleauthn")
STAFF_OIDC_MFA_ACR = env_list("STAFF_OIDC_MFA_ACR")
# The claim whose values name the staff member's groups (`groups`, or `roles` for Entra ID app roles), and a JSON
# object from each value to one staff group's name (or a list of names). A value not listed grants nothing.
STAFF_OIDC_GROUPS_CLAIM = env_str("STAFF_OIDC_GROUPS_CLAIM", "groups")
_SANDBOX_STAFF_GROUP_MAP = {
    "kb-audit-readers": "Audit readers",
    "kb-service-admins": "Partner service administrators",
    "kb-capacity-admins": "Phone service capacity administrators",
    "kb-customer-service": "Phone service customer service",
    "kb-registry-admins": "Registry administrators",
}
try:
    STAFF_OIDC_GROUP_MAP: dict[str, str | list[str]] = (
        json.loads(env_str("STAFF_OIDC_GROUP_MAP")) if env_str("STAFF_OIDC_GROUP_MAP") else {}
    ) or (_SANDBOX_STAFF_GROUP_MAP if _STAFF_SANDBOX else {})
except json.JSONDecodeError as error:
    raise ImproperlyConfigured(f"STAFF_OIDC_GROUP_MAP is not JSON: {error}") from None
# The one value of the groups claim that makes a superuser; empty (the default): no claim ever does.
STAFF_OIDC_SUPERUSER_VALUE = env_str("STAFF_OIDC_SUPERUSER_VALUE")
STAFF_OIDC_CLAIM_GIVEN_NAME = env_list("STAFF_OIDC_CLAIM_GIVEN_NAME", "given_name")
STAFF_OIDC_CLAIM_FAMILY_NAME = env_list("STAFF_OIDC_CLAIM_FAMILY_NAME", "family_name")
STAFF_OIDC_CLAIM_EMAIL = env_list("STAFF_OIDC_CLAIM_EMAIL", "email,upn,preferred_username")
STAFF_OIDC_AUTHENTICATION_CALLBACK_URL = "staff_oidc_callback"
STAFF_OIDC_STORE_ID_TOKEN = True
STAFF_OIDC_USE_PKCE = True
STAFF_OIDC_USE_NONCE = True
STAFF_OIDC_CREATE_USER = True
# Staff sign-in is configured when a provider and a client are.
STAFF_OIDC_ENABLED = bool(
    (STAFF_OIDC_OP_ISSUER or STAFF_OIDC_OP_DISCOVERY_URL or STAFF_OIDC_OP_AUTHORIZATION_ENDPOINT)
    and STAFF_OIDC_RP_CLIENT_ID
)
# Local accounts that may still sign in with a password when DEBUG is off and staff sign-in is configured: for when
# the identity provider is down. Every such sign-in is an audit event of its own.
STAFF_BREAK_GLASS_USERS = env_list("STAFF_BREAK_GLASS_USERS")
# Failed password sign-ins at /admin/login/ per client address and window; past them the page answers 429.
STAFF_PASSWORD_RATE_LIMIT = env_int("STAFF_PASSWORD_RATE_LIMIT", 10)
STAFF_PASSWORD_RATE_WINDOW_SECONDS = env_int("STAFF_PASSWORD_RATE_WINDOW_SECONDS", 15 * 60)
STAFF_SESSION_IDLE_SECONDS = env_int("STAFF_SESSION_IDLE_SECONDS", 30 * 60)
STAFF_SESSION_ABSOLUTE_SECONDS = env_int("STAFF_SESSION_ABSOLUTE_SECONDS", 10 * 60 * 60)


def _origin(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


# A form that POSTs to us may be answered with a redirect to Suomi.fi (logout, a new customer's sign-in, the
# organisation choice), or POST there itself (the provider's logout); CSP's form-action covers such redirects, so the
# providers' origins are allowed there, and only they: each address a provider is configured by (its issuer, its
# discovery document, the endpoints given one by one). An endpoint that discovery names on yet another origin goes in
# CSP_FORM_ACTION_EXTRA.
CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"] += sorted(
    {
        origin
        for origin in (
            _origin(OIDC_OP_ISSUER),
            _origin(OIDC_OP_DISCOVERY_URL),
            _origin(OIDC_OP_AUTHORIZATION_ENDPOINT),
            _origin(OIDC_OP_LOGOUT_ENDPOINT),
            _origin(VALTUUDET_BASE_URL),
            _origin(STAFF_OIDC_OP_ISSUER),
            _origin(STAFF_OIDC_OP_DISCOVERY_URL),
            _origin(STAFF_OIDC_OP_AUTHORIZATION_ENDPOINT),
            _origin(STAFF_OIDC_OP_LOGOUT_ENDPOINT),
        )
        if origin
    }
)

# --- Booking --------------------------------------------------------------------------------------------------
BOOKING_HOLD_MINUTES = env_int("BOOKING_HOLD_MINUTES", 10)
BOOKING_HORIZON_WEEKS = env_int("BOOKING_HORIZON_WEEKS", 8)
BOOKING_MIN_NOTICE_MINUTES = env_int("BOOKING_MIN_NOTICE_MINUTES", 120)
SLOT_GENERATION_WEEKS = env_int("SLOT_GENERATION_WEEKS", 8)
# The capacity and demand view marks a day of a line and language whose share of capacity taken reaches this (0–1).
CAPACITY_ALERT_SHARE = float(env_str("CAPACITY_ALERT_SHARE", "0.9"))
if not 0 < CAPACITY_ALERT_SHARE <= 1:
    raise ImproperlyConfigured("CAPACITY_ALERT_SHARE must be a share above 0 and at most 1, e.g. 0.9.")

# --- Messages to customers ------------------------------------------------------------------------------------
# Reminders go out the day before the call, only between these local hours (Europe/Helsinki): nobody gets an SMS
# at night. The window is [from, until): with 8 and 20 the last run that sends is at 19:50.
REMINDER_SEND_FROM_HOUR = env_int("REMINDER_SEND_FROM_HOUR", 8)
REMINDER_SEND_UNTIL_HOUR = env_int("REMINDER_SEND_UNTIL_HOUR", 20)
# How the customer recognises Kela's call, in each service language. Kela's outgoing numbers are not public
# (domain README), so the default stays generic; set the real wording per deployment.
KELA_CALLER_NOTE_FI = env_str("KELA_CALLER_NOTE_FI", "Kela soittaa salaisesta numerosta tai Kelan numerosta.")
KELA_CALLER_NOTE_SV = env_str("KELA_CALLER_NOTE_SV", "FPA ringer från ett dolt nummer eller från ett av FPA:s nummer.")
KELA_CALLER_NOTE_EN = env_str("KELA_CALLER_NOTE_EN", "Kela will call from a withheld number or from a Kela number.")
