# The production image: one image for web (gunicorn), worker and beat (Celery), without the Suomi.fi sandbox and its
# dependencies. A public demonstration image with the sandbox (SUOMIFI_SANDBOX=1) installs its requirements instead:
#   IMAGE_REQUIREMENTS=requirements/sandbox.txt docker compose build   (docker build --build-arg REQUIREMENTS=…)
FROM python:3.11-slim-bookworm

ARG REQUIREMENTS=requirements/base.txt

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements/base.txt requirements/sandbox.txt requirements/
RUN pip install -r "$REQUIREMENTS"

COPY . .
RUN useradd --system --uid 10001 --home-dir /app kelabooking \
    && SECRET_KEY=collectstatic-only DEBUG=0 python manage.py collectstatic --noinput \
    && mkdir -p /app/var \
    && chown -R kelabooking /app/staticfiles /app/var
USER kelabooking

EXPOSE 8000
CMD ["gunicorn", "kelabooking.wsgi:application", "--config", "kelabooking/gunicorn.conf.py"]
