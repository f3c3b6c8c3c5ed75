"""Settings for the Joget cluster console.

Every value that differs between machines comes from the environment (or a
`.env` file beside manage.py) and is read here, in one place. A bad value stops
the process at start-up with a message naming the variable: a console that
holds root on every server must not start half-configured.
"""

import contextlib
import ipaddress
import re
from datetime import timedelta
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from .storage_url import StorageUrlError, storages_for

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _required(name: str) -> str:
    value = env.str(name, default="").strip()
    if not value:
        raise ImproperlyConfigured(
            f"{name} is not set. Put it in the environment or in .env (see .env.example)."
        )
    return value


def _port(name: str, default: int) -> int:
    raw = env.str(name, default=str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a TCP port (1-65535).")
    return int(raw)


def _fernet_keys(name: str) -> list[str]:
    # Comma-separated: the first key encrypts, every key decrypts (rotation).
    keys = [k.strip() for k in _required(name).split(",") if k.strip()]
    for i, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"{name}: key #{i} is not a Fernet key (32 url-safe base64 bytes). "
                "Generate one with: python manage.py generate_secret_key --fernet"
            ) from None
    return keys


# The published example key, also where .env.example is not shipped (e.g. a trimmed image).
EXAMPLE_SECRETS = {"change-me-to-50-random-characters-python-manage-py-generate_secret_key"}


def _example_values(*names: str) -> set[str]:
    """Values .env.example gives these variables, commented out or not: public, so never a secret."""
    found = set()
    with contextlib.suppress(OSError):
        for line in (BASE_DIR / ".env.example").read_text().splitlines():
            name, sep, value = line.lstrip("# ").partition("=")
            if sep and name.strip() in names and value.strip():
                found.add(value.strip())
    return found


def _not_an_example(name: str, values: list[str]) -> None:
    examples = _example_values(name) | EXAMPLE_SECRETS
    if any(v in examples for v in values):
        make = ("from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
                if name == "SECRETS_ENCRYPTION_KEY" else "import secrets; print(secrets.token_urlsafe(50))")
        raise ImproperlyConfigured(f"{name} is the example value from .env.example, which anyone can read. "
                                   f'Make your own with: python -c "{make}"')


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = _required("SECRET_KEY")
if len(SECRET_KEY) < 32 and not DEBUG:
    raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters.")
_not_an_example("SECRET_KEY", [SECRET_KEY])
SECRETS_ENCRYPTION_KEYS = _fernet_keys("SECRETS_ENCRYPTION_KEY")
_not_an_example("SECRETS_ENCRYPTION_KEY", SECRETS_ENCRYPTION_KEYS)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
PORT = _port("PORT", 8000)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "nodes",
    "deployments",
    "licensing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "joget_cluster.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: turns a lockout flagged during authentication into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "joget_cluster.urls"
WSGI_APPLICATION = "joget_cluster.wsgi.application"
ASGI_APPLICATION = "joget_cluster.asgi.application"

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
                "joget_cluster.access.context",
            ],
        },
    },
]

try:
    DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'console.sqlite3'}")}
except (ImproperlyConfigured, KeyError, ValueError) as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL I can use: {exc}") from None
if DATABASES["default"]["ENGINE"] not in (
    "django.db.backends.postgresql",
    "django.db.backends.sqlite3",
):
    raise ImproperlyConfigured("DATABASE_URL must be postgres://... or sqlite:///...")
# Connections kept between requests and tasks (a new PostgreSQL connection costs more than a step's own
# queries); checked before reuse, so one cut by a database restart is replaced, not used.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker's step threads and beat write at once: WAL lets readers go on beside one
    # writer, IMMEDIATE takes the write lock when a transaction starts (a deferred one that upgrades later
    # fails at once with "database is locked"), and a writer waits up to 20 s for its turn.
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    })
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "nodes:cluster_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "var" / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Serve straight from the app folders too, so a checkout works before collectstatic.
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media")))
MEDIA_URL = "media/"
# Artifacts and backups go through the storage API, so a worker on another machine reads them from the
# same volume or bucket the web process wrote. STORAGE_URL picks it (joget_cluster/storage_url.py).
STORAGE_URL = env.str("STORAGE_URL", default="")
try:
    STORAGES = storages_for(STORAGE_URL, media_root=MEDIA_ROOT, backup_root=BASE_DIR / "var" / "backups")
except StorageUrlError as exc:
    raise ImproperlyConfigured(str(exc)) from None
STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"}
# Large uploads (WARs, Tomcat archives) stream to a temporary file, never memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# The largest file the console takes (a Joget WAR is a few hundred MB); a larger one is dropped as it
# arrives (joget_cluster/uploads.py), so no upload can fill the disk.
UPLOAD_MAX_MB = env.int("UPLOAD_MAX_MB", default=1024)
if UPLOAD_MAX_MB < 1:
    raise ImproperlyConfigured("UPLOAD_MAX_MB must be 1 or more.")
UPLOAD_MAX_BYTES = UPLOAD_MAX_MB * 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "joget_cluster.uploads.SizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Celery: Redis in production; with no broker set, a filesystem broker that
# needs no server, polled often enough that a task starts within ~50 ms.
# "localhost" only names the (serverless) filesystem transport's host: without it kombu warns on every connect.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
if not CELERY_BROKER_URL.startswith(("redis://", "rediss://", "filesystem://")):
    raise ImproperlyConfigured("CELERY_BROKER_URL must be redis://... or filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = BASE_DIR / "var" / "broker"
    for sub in ("in", "processed", "control"):
        (_queue_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "in"),
        "data_folder_out": str(_queue_dir / "in"),
        "processed_folder": str(_queue_dir / "processed"),
        "store_processed": False,
        "control_folder": str(_queue_dir / "control"),
        "polling_interval": 0.05,
    }
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="jcc")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(BASE_DIR / "var" / "celerybeat-schedule")

# Modules whose import registers deployment steps, in the guide's order.
DEPLOYMENT_STEP_MODULES = [
    "deployments.steps.shared_directory",
    "deployments.steps.database",
    "deployments.steps.tomcat",
    "deployments.steps.replication",
    "deployments.steps.joget",
    "deployments.steps.load_balancer",
    "deployments.steps.post_test",
    "deployments.backup_steps",  # backup and restore runs; not in the deployment plan
    "deployments.steps.members",  # day-2: member states in the balancer
    "deployments.steps.roll",  # day-2: rolling restart, upgrade, rollback
    "deployments.steps.scale",  # day-2: app servers added and removed
]
DEPLOYMENT_STEP_MODULES += env.list("EXTRA_STEP_MODULES", default=[])
# Rolling operations (deployments/rolling.py): how long a node out of the balancer may take to finish its requests,
# the pause for asynchronous replication to settle before Tomcat stops, and how long Joget and the replication
# group may take to have the restarted node back. Tomcat queues a request's session changes for its peers as the
# request ends and sends them within milliseconds on a LAN: half a second is a wide margin, and a whole second
# was most of what a roll spends per node beyond a bare script (docs/benchmarks.md).
ROLL_DRAIN_TIMEOUT = env.float("ROLL_DRAIN_TIMEOUT", default=60.0)
ROLL_SETTLE_SECONDS = env.float("ROLL_SETTLE_SECONDS", default=0.5)
ROLL_APP_TIMEOUT = env.float("ROLL_APP_TIMEOUT", default=240.0)
ROLL_REJOIN_TIMEOUT = env.float("ROLL_REJOIN_TIMEOUT", default=60.0)
# Threads per worker process that run step runs (a step's nodes at once); each holds a database connection.
STEP_THREADS = env.int("STEP_THREADS", default=32)
# A running step whose worker has not been heard from for this long is marked failed.
STEP_HEARTBEAT_TIMEOUT = env.float("STEP_HEARTBEAT_TIMEOUT", default=30.0)
STEP_SWEEP_INTERVAL = env.float("STEP_SWEEP_INTERVAL", default=10.0)
CELERY_BEAT_SCHEDULE = {
    "sweep-steps": {"task": "deployments.tasks.sweep_steps", "schedule": STEP_SWEEP_INTERVAL},
    # Per-cluster schedules (BackupPolicy: off by default) are looked at every minute.
    "backups-and-drift": {"task": "deployments.tasks.backups_and_drift", "schedule": 60.0, "options": {"expires": 60}},
}

SSH_CONNECT_TIMEOUT = env.float("SSH_CONNECT_TIMEOUT", default=10.0)
SSH_COMMAND_TIMEOUT = env.float("SSH_COMMAND_TIMEOUT", default=600.0)

# ---- Web hardening (joget_cluster/security.py) ----------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
# A working day, not Django's two weeks: a session left open on a shared machine holds root on every node.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
if SESSION_COOKIE_AGE < 60:
    raise ImproperlyConfigured("SESSION_COOKIE_AGE is in seconds: use 60 or more (default 28800, 8 hours).")
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Pages send the CSRF token in a header from the template (hx-headers), so no script reads the cookie.
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Scripts only from our own static files (no inline script, no eval). Styles allow 'unsafe-inline':
# some templates carry style attributes (a progress bar's width, chart legends) and htmx injects its
# indicator style; a style cannot run code. Empty: no header (a proxy sets its own).
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default="default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
HTTPS = env.bool("HTTPS", default=False)
if HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=3600)
    # Subdomains of the console's own host name, not of its parent domain.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Asking browsers to preload HSTS is the domain owner's decision, not a default of this console.
SILENCED_SYSTEM_CHECKS = [] if env.bool("SECURE_HSTS_PRELOAD", default=False) else ["security.W021"]

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failed logins for one user name from one
# address, that pair is refused for LOGIN_COOLOFF_MINUTES; attempts are kept in the database, so every
# web process sees them. `manage.py axes_reset` (or axes_reset_username NAME) unlocks early.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
if AXES_FAILURE_LIMIT < 1:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT must be 1 or more.")
_cooloff = env.float("LOGIN_COOLOFF_MINUTES", default=15.0)
if _cooloff <= 0:
    raise ImproperlyConfigured("LOGIN_COOLOFF_MINUTES must be more than 0.")
AXES_COOLOFF_TIME = timedelta(minutes=_cooloff)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A fixed cool-off from the lockout: further tries do not extend it (the page can say when it ends).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "joget_cluster.security.lockout_response"
AXES_CLIENT_IP_CALLABLE = "nodes.audit.client_ip"


def _networks(name: str) -> list:
    try:
        return [ipaddress.ip_network(v, strict=False) for v in env.list(name, default=[])]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc} (addresses or networks, comma-separated).") from None


# Reverse proxies whose X-Forwarded-For is believed (addresses or networks): with one in front, the
# client's address for lockouts and the audit trail is the last hop they add. Empty: the TCP peer's.
TRUSTED_PROXIES = _networks("TRUSTED_PROXIES")
# Successful logins and logouts are in the console's own audit trail (nodes.AuditEvent).
AXES_DISABLE_ACCESS_LOG = True
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "csrfmiddlewaretoken"]
AXES_VERBOSE = False
# ---- end of web hardening --------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "paramiko": {"level": "WARNING"},
        # A deployment starting or ending: shown in `make run`'s terminal, where the worker logs at WARNING.
        "deployments.events": {"level": "INFO"},
    },
}

# ---- Licensing (licensing/; see docs/licensing.md) -------------------------------------------------
# Where each app server's License page is, below the cluster's context path, per Joget major version.
# Only DX 8's default is exercised (by the test bed's stand-in); every real-Joget value is a guess.
# JOGET_LICENSE_PAGE_URL overrides them all for a site that knows its own URL.
JOGET_LICENSE_PAGE_URLS = {
    8: "/web/console/setting/license",
    7: "/web/console/setting/license",
    6: "/web/console/setting/license",
    5: "/web/console/setting/license",
}
if env.str("JOGET_LICENSE_PAGE_URL", default=""):
    JOGET_LICENSE_PAGE_URLS = dict.fromkeys(JOGET_LICENSE_PAGE_URLS, env.str("JOGET_LICENSE_PAGE_URL"))
# A regular expression with a group named `key`. The first alternative is the stand-in's markup (or an
# input with that id); the second is a guess for real Joget: "System Key", then tags, then the key as
# text or as an input's value, EE-prefixed (DX 8) or plain hex (v5-v7).
JOGET_SYSTEM_KEY_PATTERN = env.str(
    "JOGET_SYSTEM_KEY_PATTERN",
    default=r"""(?:id=["']systemKey["'][^>]*?(?:\bvalue=["']|>\s*)"""
            r"""|System\s*Key\s*(?:<(?!input\b)[^>]*>\s*|[:=]\s*)*(?:<input\b[^>]*?\bvalue=["'])?)"""
            r"""(?P<key>(?:[A-Z]{2,3}-)?[0-9A-Fa-f]{32,64})\b""",
)
# Group `status`; a value in JOGET_LICENSE_ACTIVATED_VALUES means licensed. No match: unknown.
JOGET_LICENSE_STATUS_PATTERN = env.str(
    "JOGET_LICENSE_STATUS_PATTERN", default=r"""id=["']licenseStatus["'][^>]*>\s*(?P<status>[A-Za-z ]+?)\s*<""",
)
JOGET_LICENSE_ACTIVATED_VALUES = env.list("JOGET_LICENSE_ACTIVATED_VALUES", default=["activated", "licensed"])
# Group `message`: why the node refused a license (shown to the admin, masked).
JOGET_LICENSE_ERROR_PATTERN = env.str(
    "JOGET_LICENSE_ERROR_PATTERN", default=r"""id=["']licenseError["'][^>]*>(?P<message>.*?)</""",
)
JOGET_LICENSE_FORM_FIELD = env.str("JOGET_LICENSE_FORM_FIELD", default="license")
JOGET_HTTP_TIMEOUT = env.float("JOGET_HTTP_TIMEOUT", default=5.0)
# The periodic re-read that notices key drift (new network card, cloned VM, renamed profile).
JOGET_LICENSE_CHECK_INTERVAL = env.float("JOGET_LICENSE_CHECK_INTERVAL", default=900.0)
# A read or activation not finished after this long is taken as lost (worker died): the page stops waiting.
JOGET_LICENSE_BUSY_TIMEOUT = env.float("JOGET_LICENSE_BUSY_TIMEOUT", default=120.0)
if "license-keys" not in CELERY_BEAT_SCHEDULE:
    CELERY_BEAT_SCHEDULE["license-keys"] = {
        "task": "licensing.tasks.refresh_all_keys", "schedule": JOGET_LICENSE_CHECK_INTERVAL,
    }
# ---- end of licensing ---------------------------------------------------------------------------------

# ---- REST API (deployments/api/; see docs/api.md) -----------------------------------------------------
# Requests one API token (or one logged-in user) may make, as N/second|minute|hour|day; 429 past it.
# Counted in Django's cache: per web process with the default local-memory cache.
API_THROTTLE_RATE = env.str("API_THROTTLE_RATE", default="600/minute")
if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", API_THROTTLE_RATE):
    raise ImproperlyConfigured(f"API_THROTTLE_RATE={API_THROTTLE_RATE!r}: use N/second, N/minute, N/hour or N/day.")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First: its WWW-Authenticate header makes a request without credentials a 401, not a 403.
        "deployments.api.tokens.BearerTokenAuthentication",
        # A logged-in browser, with CSRF enforced on unsafe methods.
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["deployments.api.access.RolePermission"],
    "DEFAULT_THROTTLE_CLASSES": ["deployments.api.tokens.PerTokenThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "deployments.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # `?format=csv` is the system keys' own parameter, not DRF's renderer switch.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Joget cluster console API",
    "DESCRIPTION": "What an admin clicks in the console, for scripts and pipelines. See docs/api.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the sidecar package's static files: nothing from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "DeploymentStatusEnum": "deployments.models.Deployment.Status",
        "StepRunStatusEnum": "deployments.models.StepRun.Status",
        "CheckRunStatusEnum": "deployments.models.CheckRun.Status",
        "CheckResultStatusEnum": "deployments.models.CheckResult.Status",
        "BalancerStateEnum": "nodes.models.BalancerState",
    },
    "SERVE_PERMISSIONS": ["deployments.api.access.RolePermission"],
    "SERVE_AUTHENTICATION": ["deployments.api.tokens.BearerTokenAuthentication",
                             "rest_framework.authentication.SessionAuthentication"],
}
# ---- end of REST API ------------------------------------------------------------------------------------

# ---- Node health checks (nodes/health/) ------------------------------------------------------------
HEALTH_CHECK_INTERVAL = env.float("HEALTH_CHECK_INTERVAL", default=30.0)
if HEALTH_CHECK_INTERVAL < 5:
    raise ImproperlyConfigured(f"HEALTH_CHECK_INTERVAL={HEALTH_CHECK_INTERVAL} s: use 5 s or more.")
HEALTH_RETENTION_DAYS = env.int("HEALTH_RETENTION_DAYS", default=30)
# Comma-separated addresses that get an e-mail when a check changes state; empty: no e-mail.
HEALTH_ALERT_EMAIL = env.list("HEALTH_ALERT_EMAIL", default=[])
# POSTed a JSON document for every cycle with state changes; empty: no webhook.
HEALTH_WEBHOOK_URL = env.str("HEALTH_WEBHOOK_URL", default="")
if HEALTH_WEBHOOK_URL and not HEALTH_WEBHOOK_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured("HEALTH_WEBHOOK_URL must be an http:// or https:// URL.")
HEALTH_WEBHOOK_TIMEOUT = env.float("HEALTH_WEBHOOK_TIMEOUT", default=5.0)
# Short timeouts: a dead node must not hold a thread for longer than a fraction of the interval.
HEALTH_SSH_TIMEOUT = env.float("HEALTH_SSH_TIMEOUT", default=5.0)
HEALTH_COMMAND_TIMEOUT = env.float("HEALTH_COMMAND_TIMEOUT", default=10.0)
HEALTH_HTTP_TIMEOUT = env.float("HEALTH_HTTP_TIMEOUT", default=5.0)
# Threads of one cycle. More wait out dead nodes' timeouts in parallel; fewer cost less CPU when every node
# answers (the SSH handshakes are Python, under one GIL): 32 checked 500 nodes in ~24 s on 2 busy cores.
HEALTH_CHECK_THREADS = env.int("HEALTH_CHECK_THREADS", default=32)
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = _port("EMAIL_PORT", 25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="joget-console@localhost")
CELERY_BEAT_SCHEDULE["node-health"] = {
    "task": "nodes.tasks.run_health_checks",
    "schedule": HEALTH_CHECK_INTERVAL,
    # A beat tick that waited longer than one interval is stale: the next one is already due.
    "options": {"expires": HEALTH_CHECK_INTERVAL},
}
CELERY_BEAT_SCHEDULE["node-health-prune"] = {"task": "nodes.tasks.prune_health", "schedule": 3600.0}
# ---- end of node health checks ---------------------------------------------------------------------
