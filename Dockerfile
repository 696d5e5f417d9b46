# Releaseboard: one image for the web app, the Celery worker and beat (docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=releaseboard.settings

# git for the mirrors; openssh-client for ssh:// and user@host:path remotes; procps (pgrep)
# so a git call past its timeout is killed with its transport helpers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

# The code stays root-owned and read-only; the app writes only to its var directories.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin releaseboard \
    && mkdir -p /app/var /var/lib/releaseboard \
    && chown releaseboard:releaseboard /app/var /var/lib/releaseboard
COPY . .

USER releaseboard
EXPOSE 8000
CMD ["gunicorn", "releaseboard.wsgi", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--threads", "8"]
