"""Herald's settings, read from the environment (12-factor) through django-environ.

Every variable has a default that works for local development; the README's configuration table
lists them all. Production sets at least SECRET_KEY, DATABASE_URL, ALLOWED_HOSTS.
"""

from __future__ import annotations

from pathlib import Path

import environ

from config.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# The default key is only good for a laptop: job payloads are signed with it, so production must
# set its own and never rotate it while jobs are queued.
SECRET_KEY = env.str("SECRET_KEY", default="herald-insecure-development-key-change-me")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "config",
    "subscribers",
    "events",
    "deliveries",
    "deadletters",
    # After the project's apps, so that deliveries' `qcluster` command takes the place of its own.
    "django_q",
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
]

# The admin's messages live in the session: the default (cookie, then session) set up a cookie
# signer on every request, API requests included, which never show a message.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# SQLite is the zero-setup default so `make run` works on a bare machine; production uses
# PostgreSQL (DATABASE_URL=postgres://user:pass@host:5432/herald).
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
# Keep connections open between requests and jobs: a new PostgreSQL connection costs milliseconds.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Seconds a web request's statement may run before PostgreSQL ends it (0: no limit); see
# config.webdb. Workers and management commands are not bound by it.
HERALD_WEB_STATEMENT_TIMEOUT = env.float("HERALD_WEB_STATEMENT_TIMEOUT", default=30.0)
# The hot statements (ingest, claims, outcomes) are prepared once per connection on PostgreSQL,
# which halves the server's CPU for them (config.db.PreparedCursor). Turn off behind a pooler
# that cannot keep prepared statements (pgbouncer in transaction mode before 1.21).
HERALD_PREPARED_STATEMENTS = env.bool("HERALD_PREPARED_STATEMENTS", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and HERALD_PREPARED_STATEMENTS:
    # Django turns psycopg's prepared statements off; this lets the statements that ask for it be
    # prepared. Django's own cursors bind parameters on the client and are never prepared, and
    # PreparedCursor asks explicitly, so the threshold itself never comes into play.
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 1_000_000
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # libpq would wait on an unreachable server for as long as the OS lets a TCP connect hang
    # (minutes): a request or a worker would hang with it. `?connect_timeout=` in the URL wins.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 10)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, cluster and tests share one file from several processes: WAL lets readers proceed
    # while one writer writes, IMMEDIATE avoids deadlocked lock upgrades, and the timeout waits
    # for the writer instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test_db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve the admin's assets without a separate web server, and without collectstatic in DEBUG.
WHITENOISE_USE_FINDERS = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["config.api.authentication.ApiKeyAuthentication"],
    # Every view needs a key holding the scope it asks for (config.api.permissions).
    "DEFAULT_PERMISSION_CLASSES": ["config.api.permissions.HasScope"],
    "DEFAULT_PARSER_CLASSES": ["config.api.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "config.api.negotiation.SingleRendererNegotiation",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "config.api.filters.CreatedOrderingFilter",
        "config.api.filters.KnownQueryParameters",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.api.pagination.CreatedCursorPagination",
    "DEFAULT_SCHEMA_CLASS": "config.api.schema.HeraldAutoSchema",
    "EXCEPTION_HANDLER": "config.api.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "PAGE_SIZE": env.int("HERALD_PAGE_SIZE", default=50),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Herald API",
    "DESCRIPTION": (
        "Reliable, signed webhook delivery. Send an API key as `Authorization: Bearer <key>`; "
        "each operation says which scope it needs. Every error has the shape "
        '`{"error": {"code", "message", "fields"}}`. Lists are cursor-paginated, newest first: '
        "follow `next`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The contract is public; the endpoints it describes still need a key.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Separate request and response components: read-only fields are not offered as input.
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's assets come from drf-spectacular-sidecar, served by us: /api/docs/ works
    # offline and with no third-party CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api.schema.forbid_unknown_request_fields",
    ],
    "ENUM_NAME_OVERRIDES": {
        "DeliveryStatusEnum": "deliveries.models.Delivery.Status",
        "HealthStatusEnum": ["ok", "unavailable"],
    },
}

# Logs go to stderr, one line per record. JSON (one object per line, with event_id,
# delivery_id, subscriber_id, ... as fields) for log pipelines; plain, readable text under DEBUG.
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = (env.str("LOG_FORMAT", default="") or ("plain" if DEBUG else "json")).lower()
LOGGING = logging_config(
    log_format=LOG_FORMAT,
    level=LOG_LEVEL,
    queue_level=env.str("HERALD_QUEUE_LOG_LEVEL", default="WARNING").upper(),
)

# --- Herald -------------------------------------------------------------------------------------

# Seconds a web process trusts an API key it found active before reading it again: a revoked key
# or changed scopes take effect in other processes within this time (the process that revokes
# sees it at once). 0 reads the key on every request.
HERALD_API_KEY_CACHE_SECONDS = env.float("HERALD_API_KEY_CACHE_SECONDS", default=5)

# Largest request body accepted, in bytes (413 above it); also the limit for each event's payload
# in a batch.
HERALD_MAX_PAYLOAD_BYTES = env.int("HERALD_MAX_PAYLOAD_BYTES", default=256 * 1024)
# Largest body of POST /api/v1/events/batch, and the most events one batch may carry.
HERALD_MAX_BATCH_BYTES = env.int("HERALD_MAX_BATCH_BYTES", default=8 * 1024 * 1024)
HERALD_MAX_BATCH_EVENTS = env.int("HERALD_MAX_BATCH_EVENTS", default=500)
# Hours an inbound source's old secret is still accepted after a rotation, while the sender
# switches to the new one (Stripe, rolling a secret, signs with both for up to a day).
HERALD_SOURCE_ROTATION_HOURS = env.float("HERALD_SOURCE_ROTATION_HOURS", default=24.0)
# Seconds to wait for a receiver's TCP/TLS connection.
HERALD_CONNECT_TIMEOUT = env.float("HERALD_CONNECT_TIMEOUT", default=5.0)
# Seconds to wait for each read from a receiver (response headers, each chunk of the body).
HERALD_READ_TIMEOUT = env.float("HERALD_READ_TIMEOUT", default=10.0)
# Seconds a whole delivery request may take, connect to last byte; a trickling receiver is cut off.
HERALD_DELIVERY_TIMEOUT = env.float("HERALD_DELIVERY_TIMEOUT", default=10.0)
# Seconds to wait after each failed attempt; attempts allowed = len(schedule) + 1 (~1.5 days).
HERALD_RETRY_SCHEDULE = [
    float(delay)
    for delay in env.list(
        "HERALD_RETRY_SCHEDULE",
        default=[
            "5",
            "30",
            "120",
            "600",
            "1800",
            "3600",
            "7200",
            "14400",
            "28800",
            "43200",
            "43200",
        ],
    )
]
# Bytes of each receiver response kept on the attempt record.
HERALD_RESPONSE_EXCERPT_BYTES = env.int("HERALD_RESPONSE_EXCERPT_BYTES", default=4096)
# Deliver to private, loopback, link-local, multicast and reserved addresses. Off in production:
# otherwise anyone who can create a subscriber can make Herald call into our own network.
HERALD_ALLOW_PRIVATE_TARGETS = env.bool("HERALD_ALLOW_PRIVATE_TARGETS", default=DEBUG)
# Consecutive failed attempts that open a subscriber's circuit.
HERALD_BREAKER_THRESHOLD = env.int("HERALD_BREAKER_THRESHOLD", default=5)
# Seconds an open circuit waits before one probe; doubles on each failed probe up to the maximum.
HERALD_BREAKER_COOLDOWN = env.float("HERALD_BREAKER_COOLDOWN", default=30.0)
HERALD_BREAKER_MAX_COOLDOWN = env.float("HERALD_BREAKER_MAX_COOLDOWN", default=3600.0)
# Requests per second for subscribers without their own limit; unset means unlimited.
HERALD_DEFAULT_RATE_LIMIT = env.float("HERALD_DEFAULT_RATE_LIMIT", default=None)
# Hours a rotated-out signing secret keeps signing beside the new one (0: stops at once).
HERALD_SECRET_ROTATION_HOURS = env.float("HERALD_SECRET_ROTATION_HOURS", default=24.0)
# Seconds between refreshes of the operators' dashboard.
HERALD_DASHBOARD_REFRESH_SECONDS = env.float("HERALD_DASHBOARD_REFRESH_SECONDS", default=3.0)
# The demo receiver (`manage.py demo_receiver`, started by `make run`) and the secret the demo
# subscribers sign with. Unset, the secret is derived from SECRET_KEY, so `demo` and
# `demo_receiver` agree without configuration and no secret is published in the code.
HERALD_DEMO_RECEIVER_URL = env.str(
    "HERALD_DEMO_RECEIVER_URL",
    default=f"http://127.0.0.1:{env.int('DEMO_RECEIVER_PORT', default=9000)}",
)
HERALD_DEMO_SECRET = env.str("HERALD_DEMO_SECRET", default="")
# Worker processes per qcluster; each runs a delivery dispatcher (see deliveries/dispatcher.py).
# One by default: on a small machine shared with the web processes and PostgreSQL, a second
# dispatcher mostly adds claims that race the first (measured in the README's Benchmarks). On a
# machine of its own, run one per core.
HERALD_WORKERS = env.int("HERALD_WORKERS", default=1)
# Requests each worker process keeps in flight at once (one keep-alive session per sender thread):
# against a receiver taking 0.5 s, 128 in flight is 250 deliveries a second.
HERALD_DELIVERY_CONCURRENCY = env.int("HERALD_DELIVERY_CONCURRENCY", default=128)
# Seconds an idle dispatcher (and django-q2's job poller) waits before looking for work again.
# On PostgreSQL new work wakes dispatchers at once (LISTEN/NOTIFY); this is the fallback.
HERALD_QUEUE_POLL = env.float("HERALD_QUEUE_POLL", default=0.5)

# GET /api/v1/health answers 503 when a due delivery or job has waited longer than this many
# seconds (the workers are down or cannot keep up).
HERALD_HEALTH_MAX_QUEUE_LAG = env.float("HERALD_HEALTH_MAX_QUEUE_LAG", default=300.0)
# GET /metrics (Prometheus) without an API key. Off by default outside DEBUG: the numbers say a
# lot about your traffic. When off, scrape with a key holding the `metrics` (or `read`) scope.
HERALD_METRICS_PUBLIC = env.bool("HERALD_METRICS_PUBLIC", default=DEBUG)
# Days of finished history kept: the daily prune (and `manage.py prune_history`) deletes older
# events whose deliveries all finished, with their attempts. Work in play is always kept.
HERALD_RETENTION_DAYS = env.float("HERALD_RETENTION_DAYS", default=30.0)

# Seconds a worker owns a delivery it claimed; a worker that dies mid-request is presumed dead
# after this and the delivery is attempted again. Must outlast the slowest request.
HERALD_LEASE_SECONDS = env.int(
    "HERALD_LEASE_SECONDS", default=int(HERALD_DELIVERY_TIMEOUT + HERALD_CONNECT_TIMEOUT + 30)
)

# django-q2 runs the jobs. Our models own the retry policy, so django-q2 never retries a task
# itself (max_attempts 1, failures acknowledged). `retry` is how long a dequeued job stays
# invisible before django-q2 hands it out again: it must exceed the job's wait in the cluster's
# internal queue (up to queue_limit / workers = 2 jobs ahead of it) plus its own run time, or a
# slow job would run twice.
# Read once at import: tests change it here (through the environment), not with override_settings.
Q_CLUSTER = {
    "name": env.str("HERALD_CLUSTER_NAME", default="herald"),
    "orm": "default",
    "workers": HERALD_WORKERS,
    "timeout": HERALD_LEASE_SECONDS,
    "retry": HERALD_LEASE_SECONDS * 3 + 30,
    "max_attempts": 1,
    "ack_failures": True,
    # -1 keeps no successful task rows; the default (250) re-prunes the table on every task.
    "save_limit": -1,
    "queue_limit": HERALD_WORKERS * 2,
    "poll": HERALD_QUEUE_POLL,
    "catch_up": False,
    "label": "Jobs",
}
