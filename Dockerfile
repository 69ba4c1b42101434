# The production image: one image for web (gunicorn), worker and beat (Celery), without the Suomi.fi sandbox and its
# dependencies. A public demonstration image with the sandbox (SUOMIFI_SANDBOX=1) installs its requirements instead:
#   IMAGE_REQUIREMENTS=requirements/sandbox.txt docker compose build   (docker build --build-arg REQUIREMENTS=…)
#
# It runs as any user of group 0 (OpenShift gives each project an arbitrary UID) on a read-only root file system: the
# app writes only under /tmp (gunicorn's heartbeat files go to /dev/shm where there is one, beat's schedule file to
# /tmp) and, in a demo with generated keys, /app/var. docs/operations.md, "Image", lists what it expects.
FROM python:3.11-slim-bookworm

ARG REQUIREMENTS=requirements/base.txt

# HOME=/tmp: a writable home for whatever asks for one, whatever the UID.
# REMAP_SIGTERM=SIGQUIT: the Celery worker takes SIGTERM (what `docker stop` and Kubernetes send) as a cold shutdown
# with the soft shutdown's grace (CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT) instead of waiting for every task without end.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    REMAP_SIGTERM=SIGQUIT

WORKDIR /app
COPY requirements/base.txt requirements/sandbox.txt requirements/
RUN pip install -r "$REQUIREMENTS"

COPY . .
# Static files and bytecode are made here, as root: at run time nothing under /app is written but var/, which belongs
# to group 0 like the arbitrary user (OpenShift's convention for writable folders).
RUN SECRET_KEY=collectstatic-only DEBUG=0 python manage.py collectstatic --noinput \
    && python -m compileall -q kelabooking partners bookings registry \
    && mkdir -p /app/var \
    && chgrp -R 0 /app/var \
    && chmod -R g=u /app/var \
    && useradd --system --uid 10001 --gid 0 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin kelabooking

# Numeric, so that Kubernetes' runAsNonRoot can tell it is not root; any other UID of group 0 works as well.
USER 10001:0

EXPOSE 8000
# The web container's own check (compose overrides it for worker and beat; Kubernetes uses its probes instead): /healthz
# on gunicorn's port, with the first of ALLOWED_HOSTS as Host, so it passes the host validation every request passes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; e = os.environ.get; h = e('ALLOWED_HOSTS', '').split(',')[0].strip().lstrip('*.') or 'localhost'; p = e('GUNICORN_BIND', ':8000').rsplit(':', 1)[1]; u.urlopen(u.Request(f'http://127.0.0.1:{p}/healthz', headers={'Host': h}), timeout=4)"]
# gunicorn: SIGTERM is its graceful shutdown (graceful_timeout in kelabooking/gunicorn.conf.py).
STOPSIGNAL SIGTERM
CMD ["gunicorn", "kelabooking.wsgi:application", "--config", "kelabooking/gunicorn.conf.py"]
