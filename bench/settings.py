"""Settings of the HTTP benchmark's servers: production's, with DEBUG off, over plain HTTP on 127.0.0.1.

TLS ends at the proxy in production. Over loopback HTTP the client must get its cookies back and must not be
redirected to HTTPS, so only those settings differ, plus the floor view's URL, the sandbox's typed partners and (for
bench/http_contention.py only) a shorter hold.
"""

import os

from kelabooking.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
INSTALLED_APPS = [*INSTALLED_APPS, "bench"]  # noqa: F405 - the floor's table (bench/models.py)

SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 0
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SESSION_COOKIE_NAME = "sessionid"
CSRF_COOKIE_NAME = "csrftoken"

# Every simulated partner signs in with a typed test identity code of their own and acts for Helsinki.
SUOMIFI_SANDBOX_TYPED_MANDATES = [("0201256-6", "Helsingin kaupunki")]

# bench/http_contention.py shortens the holds (seconds, may be a fraction) so that they expire during its run.
if os.environ.get("BENCH_HOLD_SECONDS"):
    BOOKING_HOLD_MINUTES = float(os.environ["BENCH_HOLD_SECONDS"]) / 60

# bench/profile_requests.py: every request profiled inside the workers (bench/profiling.py).
if os.environ.get("BENCH_PROFILE_DIR"):
    MIDDLEWARE = ["bench.profiling.ProfilingMiddleware", *MIDDLEWARE]  # noqa: F405
