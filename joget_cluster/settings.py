"""Settings for the Joget cluster console.

Every value that differs between machines comes from the environment (or a
`.env` file beside manage.py) and is read here, in one place. A bad value stops
the process at start-up with a message naming the variable: a console that
holds root on every server must not start half-configured.
"""

from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

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


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = _required("SECRET_KEY")
if len(SECRET_KEY) < 32 and not DEBUG:
    raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters.")
SECRETS_ENCRYPTION_KEYS = _fernet_keys("SECRETS_ENCRYPTION_KEY")
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
    "nodes",
    "deployments",
    "licensing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
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
STORAGES = {
    # Artifacts go through the storage API, so a worker on another machine
    # reads them from the same volume or bucket the web process wrote.
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Large uploads (WARs, Tomcat archives) stream to a temporary file, never memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Celery: Redis in production; with no broker set, a filesystem broker that
# needs no server, polled often enough that a task starts within ~50 ms.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
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
]
DEPLOYMENT_STEP_MODULES = [
    m for m in DEPLOYMENT_STEP_MODULES if (BASE_DIR / (m.replace(".", "/") + ".py")).exists()
] + env.list("EXTRA_STEP_MODULES", default=[])
# A running step whose worker has not been heard from for this long is marked failed.
STEP_HEARTBEAT_TIMEOUT = env.float("STEP_HEARTBEAT_TIMEOUT", default=30.0)
STEP_SWEEP_INTERVAL = env.float("STEP_SWEEP_INTERVAL", default=10.0)
CELERY_BEAT_SCHEDULE = {
    "sweep-steps": {"task": "deployments.tasks.sweep_steps", "schedule": STEP_SWEEP_INTERVAL},
}

SSH_CONNECT_TIMEOUT = env.float("SSH_CONNECT_TIMEOUT", default=10.0)
SSH_COMMAND_TIMEOUT = env.float("SSH_COMMAND_TIMEOUT", default=600.0)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env.bool("HTTPS", default=False):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=3600)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"paramiko": {"level": "WARNING"}},
}
