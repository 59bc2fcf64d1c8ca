"""Settings, read from the environment only (django-environ).

Nothing needs to be configured for local use: SQLite in ``var/``, the django-q2 ORM broker, and a
secret key and Fernet key generated once into ``var/``.  Production sets ``DATABASE_URL``
(PostgreSQL), ``REDIS_URL`` (Redis broker, shared rate limits, cache), ``SECRET_KEY``,
``FERNET_KEYS``, ``ALLOWED_HOSTS``, ``CSRF_TRUSTED_ORIGINS`` and ``HTTPS=true``; then
``manage.py check --deploy`` is clean.
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from import_export.formats.base_formats import CSV

logger = logging.getLogger(__name__)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("MLC_VAR_DIR", BASE_DIR / "var"))

env = environ.Env()


def _local_secret(name: str, make: callable) -> str:
    """Return a secret kept in ``var/`` for local use, creating it (mode 0600) the first time."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    path = VAR_DIR / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(make())
    return path.read_text().strip()


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or _local_secret(
    "secret_key", lambda: secrets.token_urlsafe(50)
)
# Fernet keys for credentials at rest: the first encrypts, all decrypt (rotation without downtime).
FERNET_KEYS = env.list("FERNET_KEYS", default=[]) or [
    _local_secret("fernet_key", lambda: Fernet.generate_key().decode())
]
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS=true behind TLS: secure cookies, HSTS and redirect (what check --deploy asks for).
HTTPS = env.bool("HTTPS", default=False)
if HTTPS:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    if not SECURE_HSTS_PRELOAD:  # an explicit opt-out of the preload list is a choice, not a gap
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    if env.bool("BEHIND_PROXY", default=True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "axes",
    # django-admin-rangefilter: date-range filters on the audit lists (month-end).
    "rangefilter",
    # django-import-export: CSV export of audit records and collections, mapping imports with
    # a preview before anything is saved.
    "import_export",
    "connections",
    "syncs",
    "audit",
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
    # A lost database connection: 503 and a plain page, never a 500 (mlconnector/middleware.py).
    "mlconnector.middleware.DatabaseUnavailable",
    "axes.middleware.AxesMiddleware",  # answers a locked-out login (must come last)
]

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one username
# from one address, that pair is locked out for LOGIN_LOCKOUT_MINUTES (`manage.py axes_reset`
# unlocks everyone at once).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# …and an address whose wrong passwords across all usernames reach this many (password
# spraying) is locked for every username for the same time (mlconnector/logins.py).
AXES_HANDLER = "mlconnector.logins.LoginThrottle"
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=20)
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

ROOT_URLCONF = "mlconnector.urls"
WSGI_APPLICATION = "mlconnector.wsgi.application"

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
            ],
        },
    },
]

VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # One writer at a time, taken at BEGIN (no upgrade deadlocks), WAL so readers never block:
    # the web server and a django-q2 worker share the file safely.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    # 0 (a connection per request, closed after it) is right for a threaded server such as
    # runserver under `make demo`, whose threads would each keep an idle connection open.
    # Behind gunicorn with sync workers, CONN_MAX_AGE=60 reuses one connection per worker: size
    # PostgreSQL's max_connections for (web workers times threads) + (qcluster processes times
    # (Q_WORKERS + 2)) per machine, plus headroom (README, Configuration).
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "mlc",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# django-q2: the ORM broker with nothing configured, Redis when REDIS_URL is set.
# - A task that raised is acknowledged, not retried by the broker (ack_failures): the runner has
#   recorded each record's outcome, the reaper queues unfinished webhook events again, schedules
#   read again what a failed run left, and people replay the rest.
# - A task whose worker died (killed, machine lost) is never acknowledged: the broker hands it out
#   again after `retry` seconds, up to `max_attempts` deliveries.  Every task is safe to run twice
#   (the posting ledger, one live run per integration, per-integration webhook status).
Q_CLUSTER = {
    "name": "mlconnector",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=1800),
    "retry": env.int("Q_TIMEOUT", default=1800) + 60,
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    "label": "Task queue",
    "sync": env.bool("Q_SYNC", default=False),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.5

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
# Times with seconds and time zone everywhere (mlconnector/formats/en/formats.py).
FORMAT_MODULE_PATH = ["mlconnector.formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Connector behaviour (all overridable from the environment).
MLC = {
    # Refresh an OAuth token this long before it expires (the smaller of the two applies).
    "TOKEN_REFRESH_SKEW_SECONDS": env.int("TOKEN_REFRESH_SKEW_SECONDS", default=300),
    "TOKEN_REFRESH_SKEW_RATIO": env.float("TOKEN_REFRESH_SKEW_RATIO", default=0.10),
    # How long a posting-ledger claim is held before another worker may take it over.
    "LEDGER_LEASE_SECONDS": env.int("LEDGER_LEASE_SECONDS", default=300),
    # Records a run keeps in flight to one target when its connection sets no "max_in_flight":
    # with 150 ms per call and Stripe's 100 requests/s, about 15 keep the limit busy.
    "MAX_IN_FLIGHT": env.int("MAX_IN_FLIGHT", default=16),
    # How long a run split across workers waits for its other parts, none of them beating its
    # heartbeat, before the reaper closes it as interrupted without moving the cursor (the parts
    # still post; the next run reads their window again).
    "PART_WAIT_SECONDS": env.int("PART_WAIT_SECONDS", default=3600),
    # A live run writes a heartbeat this often; one silent for RUN_STALE_SECONDS is taken to
    # have lost its worker, and the reaper closes it as interrupted.
    "HEARTBEAT_SECONDS": env.int("HEARTBEAT_SECONDS", default=15),
    "RUN_STALE_SECONDS": env.int("RUN_STALE_SECONDS", default=90),
    # `manage.py worker` lets runs in progress finish this long after SIGTERM, then stops them.
    "WORKER_STOP_SECONDS": env.int("WORKER_STOP_SECONDS", default=20),
    # A webhook event still unprocessed this long after it was queued is queued again.
    "EVENT_REQUEUE_SECONDS": env.int("EVENT_REQUEUE_SECONDS", default=120),
    # …at most this many times in all (about 4 hours with the doubling wait): then it is parked
    # with its last problem for a person to read, and retried only when they ask.
    "EVENT_MAX_ATTEMPTS": env.int("EVENT_MAX_ATTEMPTS", default=8),
    # A record waiting for something still to arrive (a payment's invoice, an invoice's
    # customer) is retried by every run and comes to the review queue after this many hours.
    "WAIT_REVIEW_HOURS": env.float("WAIT_REVIEW_HOURS", default=6),
    # A run or replay a person asked for that no worker has taken this long after it was handed
    # to the queue (lost in a Redis restart, or the queue was out of reach) is queued again.
    "REQUEST_REQUEUE_SECONDS": env.int("REQUEST_REQUEUE_SECONDS", default=60),
    # "db" or "redis"; defaults to redis when REDIS_URL is set.
    "RATE_LIMIT_BACKEND": env.str("RATE_LIMIT_BACKEND", default="redis" if REDIS_URL else "db"),
    # Redis key prefix of the rate-limit buckets: give each deployment sharing a Redis its own.
    "RATE_LIMIT_PREFIX": env.str("RATE_LIMIT_PREFIX", default="mlc:rl:"),
    # Alerts to the finance reviewers (the Finance reviewer group's e-mail addresses, plus
    # ALERT_EMAILS): a run that failed, and items waiting in the review queue longer than this.
    "ALERT_WAITING_HOURS": env.float("ALERT_WAITING_HOURS", default=24),
    "ALERT_EMAILS": env.list("ALERT_EMAILS", default=[]),
    # The address the admin is reached at, for the links in alert e-mails.
    "ADMIN_URL": env.str("ADMIN_URL", default="http://127.0.0.1:8000/admin/"),
}

# CSV only (what finance staff open in a spreadsheet); exporting needs view permission, importing
# mappings needs add permission on them.
IMPORT_EXPORT_FORMATS = [CSV]
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"

# E-mail: EMAIL_URL (smtp+tls://user:password@host:587) in production; without it, alerts are
# printed to the worker's console (what the demo shows).
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="ml-connector <ml-connector@localhost>")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "mlconnector.logfilters.RedactingFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "stripe": {"level": "WARNING"},  # it logs every request at INFO
        "werkzeug": {"level": "WARNING"},  # the sandbox's access log
        # paramiko logs every failed handshake as an ERROR with a traceback; the SFTP provider
        # reports each failure itself, in plain words.
        "paramiko": {"level": "CRITICAL"},
        "asyncssh": {"level": "WARNING"},  # the sandbox SFTP server logs every connection
        "axes": {"level": "WARNING"},  # every login attempt at INFO
    },
}
