"""Releaseboard settings, read from environment variables.

With no environment set this is the embedded default: SQLite (WAL) in var/, Celery's
filesystem transport in var/broker/, repositories in var/repos/. Production sets
RELEASEBOARD_PRODUCTION=True and gets a clear error at start when a setting is unsafe.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    """Only "True" and "False" are accepted, so a typo cannot silently flip a switch."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value == "True":
        return True
    if value == "False":
        return False
    raise ImproperlyConfigured(f"{name} must be True or False, not {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


VAR_DIR = Path(env_str("RELEASEBOARD_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

PRODUCTION = env_bool("RELEASEBOARD_PRODUCTION", False)
DEBUG = env_bool("RELEASEBOARD_DEBUG", False)


def _secret_key() -> str:
    key = env_str("RELEASEBOARD_SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("RELEASEBOARD_SECRET_KEY must be set in production.")
    # The embedded default keeps a generated key in var/ so sessions survive a restart.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# The key of the personal access tokens' HMAC digests. Its own variable, so rotating it
# (which invalidates every token) is a separate decision from rotating sessions; by
# default derived from the secret key, never equal to it.
TOKEN_DIGEST_KEY = (
    env_str("RELEASEBOARD_TOKEN_KEY") or hashlib.sha256(b"releaseboard-tokens:" + SECRET_KEY.encode()).hexdigest()
)
ALLOWED_HOSTS = [h for h in env_str("RELEASEBOARD_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in env_str("RELEASEBOARD_CSRF_TRUSTED_ORIGINS").split(",") if o]

if PRODUCTION:
    if DEBUG:
        raise ImproperlyConfigured("RELEASEBOARD_DEBUG must be False in production.")
    if len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("RELEASEBOARD_SECRET_KEY must be at least 50 characters.")
    if not os.environ.get("RELEASEBOARD_ALLOWED_HOSTS"):
        raise ImproperlyConfigured("RELEASEBOARD_ALLOWED_HOSTS must name the host(s) that serve Releaseboard.")

INSTALLED_APPS = [
    "releaseboard.web.admin_apps.RoleAdminConfig",  # django.contrib.admin, Admin role only
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "csp",
    "django_htmx",
    "template_partials",
    "ninja",  # the API docs page then serves Swagger UI from our static files (CSP: 'self'), not a CDN
    "releaseboard.audit",
    "releaseboard.jobs",
    "releaseboard.releases",
    "releaseboard.radar",
    "releaseboard.web",
    "releaseboard.policy",
    "releaseboard.integrations",
    "releaseboard.tokens",
    "releaseboard.deployments",
    "releaseboard.review",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # A refusal (PermissionDenied) as the site's own page, logged without a traceback.
    "releaseboard.web.refusals.RefusalMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "releaseboard.urls"

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
                "releaseboard.web.context_processors.roles",
                "releaseboard.policy.context.drift_banner",
            ],
        },
    },
]

WSGI_APPLICATION = "releaseboard.wsgi.application"

_sqlite_path = VAR_DIR / "db.sqlite3"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", f"sqlite:///{_sqlite_path}"), conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker writes; IMMEDIATE transactions take
    # the write lock up front, so two writers queue instead of failing with "locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("RELEASEBOARD_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
# Outside production, serve static files straight from static/ and the apps (no
# collectstatic step before `make run`); production serves the collected, hashed files.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Security: HTTPS, cookies, sessions -----------------------------------------------
# Production sits behind a TLS-terminating proxy (see docker-compose.yml). Only when
# RELEASEBOARD_BEHIND_TLS_PROXY says so does Django believe the proxy's
# X-Forwarded-Proto (to know a request came over HTTPS) and X-Forwarded-For (the
# client address the sign-in lockout counts by). Without a proxy those headers come
# from the client and could be forged, so they are ignored.
BEHIND_TLS_PROXY = env_bool("RELEASEBOARD_BEHIND_TLS_PROXY", False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Plain HTTP is redirected to HTTPS in production. Behind a proxy this needs
# RELEASEBOARD_BEHIND_TLS_PROXY=True, or every request looks like HTTP and loops.
SECURE_SSL_REDIRECT = env_bool("RELEASEBOARD_SSL_REDIRECT", PRODUCTION)
# Browsers remember to use only HTTPS for this long. Off outside production, so a
# developer's localhost is not pinned to HTTPS. It covers the Releaseboard host and
# hosts below it, never its parent domain.
SECURE_HSTS_SECONDS = env_int("RELEASEBOARD_HSTS_SECONDS", 365 * 24 * 3600 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = [
    # HSTS preload is a promise to the browsers' preload lists that only the owner of
    # the parent domain can make; Releaseboard sends HSTS without it on purpose.
    "security.W021",
]

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = PRODUCTION
SESSION_COOKIE_SAMESITE = "Lax"
# A sign-in lasts a working day, counted from when it happened (the live pollers do
# not extend it), and ends when the browser closes.
SESSION_COOKIE_AGE = env_int("RELEASEBOARD_SESSION_SECONDS", 8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_SECURE = PRODUCTION
# Pages and htmx send the token from the template (hx-headers on <body>), never read
# from the cookie by script, so the cookie can be hidden from script as well.
CSRF_COOKIE_HTTPONLY = True

# --- Security: Content-Security-Policy (django-csp) ------------------------------------
# Scripts only from this origin or with this response's nonce; no inline event
# handlers, no eval (htmx runs with allowEval off, see templates/base.html); no inline
# styles, no plugins, no framing, forms post only here.
from csp.constants import NONCE, NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}

# --- Security: sign-in lockout (django-axes) -------------------------------------------
# Five wrong passwords for one username from one address lock that pair out for 15
# minutes (each further try restarts the wait); a successful sign-in resets the count.
# Counting the pair, not the username alone, keeps an attacker from locking a real
# user out from elsewhere.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "releaseboard.web.security.AdminRoleBackend",
]
AXES_FAILURE_LIMIT = 5
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "releaseboard.web.security.lockout_response"
# The client address comes from our own function, not from django-ipware's guesses: it
# reads X-Forwarded-For only behind the proxy, and then only the hop the proxy added.
AXES_CLIENT_IP_CALLABLE = "releaseboard.web.security.client_ip"
# Lockouts are kept as rows (admin: Axes); no log line for every sign-in.
AXES_VERBOSE = False

# --- Celery ---------------------------------------------------------------------------
# The embedded default is Celery's filesystem transport under var/broker, so `make run`
# needs neither Redis nor RabbitMQ. Production sets CELERY_BROKER_URL=redis://...
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Redis redelivers an unacked message after this many seconds. It must be longer
        # than the longest job (the test timeout cap plus slack), or a healthy long test
        # run would be delivered to a second worker while the first still runs it.
        "visibility_timeout": env_int("RELEASEBOARD_VISIBILITY_TIMEOUT", 4 * 3600),
    }
    if env_str("RELEASEBOARD_BROKER_PREFIX"):
        # Keeps several installations (or test sessions) on one Redis apart.
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = env_str("RELEASEBOARD_BROKER_PREFIX")

# The longest a single job may run; test commands are capped below this.
JOB_HARD_TIME_LIMIT = env_int("RELEASEBOARD_JOB_HARD_TIME_LIMIT", 3 * 3600)
# A job's lease on its row: renewed by the heartbeat; a job whose lease ran out is
# treated as lost by the reaper, and its holder may no longer commit anything.
JOB_LEASE_SECONDS = env_int("RELEASEBOARD_JOB_LEASE_SECONDS", 60)
JOB_HEARTBEAT_SECONDS = env_int("RELEASEBOARD_JOB_HEARTBEAT_SECONDS", 5)
JOB_MAX_ATTEMPTS = env_int("RELEASEBOARD_JOB_MAX_ATTEMPTS", 3)
# A QUEUED job whose message has not been picked up for this long is published again.
JOB_REPUBLISH_SECONDS = env_int("RELEASEBOARD_JOB_REPUBLISH_SECONDS", 60)
# A job whose repository another job is writing to is published again after this long,
# instead of waiting inside a worker slot.
JOB_LEASE_RETRY_SECONDS = env_int("RELEASEBOARD_JOB_LEASE_RETRY_SECONDS", 2)
SYNC_INTERVAL_SECONDS = env_int("RELEASEBOARD_SYNC_INTERVAL_SECONDS", 60)
REAPER_INTERVAL_SECONDS = env_int("RELEASEBOARD_REAPER_INTERVAL_SECONDS", 15)

# Only JSON crosses the broker: a message is a job id, and pickle would let whoever can
# write to the broker run code on the workers.
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# The job row holds the outcome; a result backend would only be a second, stale copy.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# Ack after the task ran, not when it arrived: a worker that dies mid-job leaves the
# message to be delivered again instead of losing it. The claim (one conditional UPDATE
# on the job row) makes the second delivery harmless when the first finished.
CELERY_TASK_ACKS_LATE = True
# A pool process killed by the OS (OOM, SIGKILL) requeues its message instead of
# acking it as failed.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Take one message at a time: a worker busy with a long test run does not sit on other
# jobs that an idle worker could run now.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "git"
# Hard and soft limits above the longest test timeout: a job stuck outside the sandbox
# (a hung git over a dead network) is stopped rather than holding a pool slot forever.
CELERY_TASK_TIME_LIMIT = JOB_HARD_TIME_LIMIT
CELERY_TASK_SOFT_TIME_LIMIT = JOB_HARD_TIME_LIMIT - 60
# When the broker connection drops, acks_late messages in flight are redelivered to
# another worker; cancelling the running copies here prevents two workers from running
# the same long job at once (the lease check would stop the loser anyway).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Recycle pool processes now and then, so a leak in a git or test run cannot grow a
# worker without bound.
CELERY_WORKER_MAX_TASKS_PER_CHILD = env_int("RELEASEBOARD_WORKER_MAX_TASKS_PER_CHILD", 100)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A click must not hang when the broker is down: try briefly, then leave the job
# QUEUED for the reaper to publish (the row is already committed).
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Releaseboard ---------------------------------------------------------------------
WORK_DIR = Path(env_str("RELEASEBOARD_WORK_DIR", str(VAR_DIR / "work")))
# Local paths and file:// remotes are for the demo and tests; production turns them off.
ALLOW_LOCAL_REPOSITORIES = env_bool("RELEASEBOARD_ALLOW_LOCAL_REPOSITORIES", not PRODUCTION)
GIT_COMMITTER_NAME = env_str("RELEASEBOARD_GIT_NAME", "Releaseboard")
GIT_COMMITTER_EMAIL = env_str("RELEASEBOARD_GIT_EMAIL", "releaseboard@localhost")
# Credentials for remotes live in a file outside the database, readable by the workers
# only: a JSON object mapping a remote URL prefix to {"username": ..., "password": ...}
# (an HTTPS token). Git gets them through its environment, never in argv or .git/config.
CREDENTIALS_FILE = env_str("RELEASEBOARD_CREDENTIALS_FILE")
# Every git command is killed past its timeout, so a remote that hangs fails its job
# ("the remote did not answer within N s") instead of holding it and the repository's
# lease until the job's hard time limit. Network: fetch, push, ls-remote; local: the rest.
GIT_NETWORK_TIMEOUT_SECONDS = env_int("RELEASEBOARD_GIT_NETWORK_TIMEOUT_SECONDS", 300)
GIT_LOCAL_TIMEOUT_SECONDS = env_int("RELEASEBOARD_GIT_LOCAL_TIMEOUT_SECONDS", 120)
TEST_OUTPUT_CAP_BYTES = env_int("RELEASEBOARD_TEST_OUTPUT_CAP_BYTES", 2 * 1024 * 1024)
PROMOTION_MAX_RETESTS = env_int("RELEASEBOARD_PROMOTION_MAX_RETESTS", 3)

# The audit log's checkpoints (count and head hash of the chain) are signed with a key
# kept outside the database, and written as files Ops can copy off the host.
AUDIT_KEY_FILE = Path(env_str("RELEASEBOARD_AUDIT_KEY_FILE", str(VAR_DIR / "audit-key")))
AUDIT_CHECKPOINT_DIR = Path(env_str("RELEASEBOARD_AUDIT_CHECKPOINT_DIR", str(VAR_DIR / "audit-checkpoints")))
AUDIT_CHECKPOINT_INTERVAL_SECONDS = env_int("RELEASEBOARD_AUDIT_CHECKPOINT_INTERVAL_SECONDS", 3600)
# How often beat starts a full verification of the audit chain (the page shows its result).
AUDIT_FULL_VERIFICATION_INTERVAL_SECONDS = env_int("RELEASEBOARD_AUDIT_FULL_VERIFICATION_INTERVAL_SECONDS", 86400)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("RELEASEBOARD_LOG_LEVEL", "INFO")},
}

# Outgoing webhooks: networks (comma-separated CIDRs) that webhook URLs may point into
# although they are private or loopback, e.g. "10.20.0.0/16" for an internal chat server.
WEBHOOK_ALLOW_NETWORKS = env_str("RELEASEBOARD_WEBHOOK_ALLOW_NETWORKS", "")
# Where people reach Releaseboard (e.g. https://releases.example.com), for links in messages.
RELEASEBOARD_BASE_URL = env_str("RELEASEBOARD_BASE_URL", "").rstrip("/")
