"""Foretaste settings: one module, read from the environment.

``FORETASTE_ENV`` picks the mode: ``production`` (the default, so a forgotten variable never
runs a public site in development mode), ``development`` (``make run``: SQLite, an embedded
broker, mail to files) or ``test``. In production every setting without a safe default must be
given, and a missing or malformed one stops startup with a message that names it.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import dj_email_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _
from dotenv import load_dotenv

from config.env import env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
# A .env file beside manage.py is read for local work; real environment variables win.
load_dotenv(BASE_DIR / ".env", override=False)

FORETASTE_ENV = env_choice("FORETASTE_ENV", "production", ("production", "development", "test"))
PRODUCTION = FORETASTE_ENV == "production"
VAR_DIR = Path(env_str("FORETASTE_VAR_DIR", str(BASE_DIR / "var")))

# Off unless asked for (`make run DEBUG=1`), in development too: `make run` should show what a
# user sees, the styled 404 and 500 pages, not Django's debug page listing every URL.
DEBUG = env_bool("DEBUG", False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG=1 is not allowed with FORETASTE_ENV=production.")


def _secret_key() -> str:
    key = env_str("SECRET_KEY", required=PRODUCTION)
    if key is None:
        return "dev-only-insecure-key-never-used-in-production-0123456789abcdef"
    if PRODUCTION and (len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure")):
        raise ImproperlyConfigured(
            "SECRET_KEY is too weak: use at least 50 random characters "
            '(python -c "import secrets; print(secrets.token_urlsafe(50))").'
        )
    return key


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"], required=PRODUCTION)
if PRODUCTION and "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must name the site's hosts; '*' is not allowed in production.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    # Before the admin, as django-modeltranslation requires: the offer's own words per language.
    "modeltranslation",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # allauth names the site in emails and builds links outside requests from it (SITE_ID).
    "django.contrib.sites",
    "allauth",
    "allauth.account",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "csp",
    "post_office",
    "accounts",
    "offers",
    "trials",
    "billing",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The language on a logged-in customer's account comes before the cookie and the browser's.
    "accounts.languages.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

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
                "django.template.context_processors.i18n",
                "accounts.context_processors.navigation",
            ],
        },
    },
]


# --- Database --------------------------------------------------------------------------------
def _databases() -> dict:
    url = env_str("DATABASE_URL", required=PRODUCTION)
    if url is None:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        return {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": VAR_DIR / "foretaste.sqlite3",
                # The web server and the Celery worker share this file. WAL lets readers go on
                # while one writes; IMMEDIATE takes the write lock at BEGIN, so a transaction
                # waits for it instead of failing later with "database is locked".
                "OPTIONS": {
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                    "transaction_mode": "IMMEDIATE",
                    "timeout": 20,
                },
                # A file (the browser tests' live server reads it from another thread), one per
                # test process, so that two test runs at once do not share a database.
                "TEST": {"NAME": VAR_DIR / f"test-{os.getpid()}.sqlite3"},
            }
        }
    scheme = urlsplit(url).scheme
    if scheme not in ("postgres", "postgresql", "pgsql", "sqlite"):
        raise ImproperlyConfigured(
            f"DATABASE_URL has the scheme {scheme!r}; use postgres://user:password@host:port/name "
            "(or sqlite:///path for local work)."
        )
    try:
        config = dj_database_url.parse(url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is malformed: {exc}") from None
    if not config.get("NAME"):
        raise ImproperlyConfigured("DATABASE_URL names no database (the part after the last '/').")
    config["CONN_HEALTH_CHECKS"] = True
    return {"default": config}


DATABASES = _databases()
# The ledger's (customer, purchased_at) index carries columns for PostgreSQL's index-only reads
# (billing.models.Purchase); SQLite, the embedded default, takes the index without them, which
# is all it needs, so its warning about it is not shown at every start.
SILENCED_SYSTEM_CHECKS = ["models.W040"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# --- Cache (shared in production: allauth's rate limits must count across processes) ------
def _caches() -> dict:
    url = env_str("CACHE_URL", required=PRODUCTION)
    if url is None:
        return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured("CACHE_URL must be a Redis URL, e.g. redis://127.0.0.1:6379/1.")
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}


CACHES = _caches()

# --- Accounts --------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_REDIRECT_URL = "/"
LOGIN_URL = "account_login"
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "Foretaste: "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if PRODUCTION else "http"
ACCOUNT_RATE_LIMITS_ENABLED = env_bool("ACCOUNT_RATE_LIMITS_ENABLED", True)
if not ACCOUNT_RATE_LIMITS_ENABLED:
    ACCOUNT_RATE_LIMITS = False
# How many proxies in front of gunicorn append to X-Forwarded-For. allauth's rate limits count
# by client IP; with 0 behind a proxy every visitor has the proxy's address, so one attacker's
# failed logins would lock everyone out. Never more than there really are: the client could
# forge the extra entries.
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
# The Site row (accounts/migrations/0005_site_foretaste) names the product in allauth's emails.
SITE_ID = 1


# --- Email -----------------------------------------------------------------------------------
def _email() -> dict:
    default = None if PRODUCTION else f"file://{VAR_DIR / 'mail'}"
    url = env_str("EMAIL_URL", default, required=PRODUCTION)
    try:
        config = dj_email_url.parse(url)
    except Exception:  # dj-email-url raises bare exceptions on some malformed URLs
        config = {}
    if "EMAIL_BACKEND" not in config:
        raise ImproperlyConfigured(
            "EMAIL_URL is malformed; use smtp://user:password@host:587/?tls=True, "
            "file:///path/to/folder, console:// or memory://."
        ) from None
    return config


_EMAIL = _email()
EMAIL_BACKEND = _EMAIL["EMAIL_BACKEND"]
EMAIL_HOST = _EMAIL["EMAIL_HOST"]
EMAIL_PORT = _EMAIL["EMAIL_PORT"]
EMAIL_HOST_USER = _EMAIL["EMAIL_HOST_USER"]
EMAIL_HOST_PASSWORD = _EMAIL["EMAIL_HOST_PASSWORD"]
EMAIL_USE_TLS = _EMAIL["EMAIL_USE_TLS"]
EMAIL_USE_SSL = _EMAIL["EMAIL_USE_SSL"]
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
if EMAIL_BACKEND.endswith("filebased.EmailBackend"):
    # dj-email-url drops the leading "/" of file:///abs/path; the URL's path is the folder.
    EMAIL_FILE_PATH = urlsplit(env_str("EMAIL_URL", f"file://{VAR_DIR / 'mail'}")).path
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Foretaste <hello@foretaste.test>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# The outbox (accounts/emails.py) keeps messages in django-post-office's tables and sends them
# with its own claim; post_office's own Celery hook and lock-file sender stay off.
POST_OFFICE = {"CELERY_ENABLED": False, "LOG_LEVEL": 2}

# --- Internationalisation --------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", _("English")),
    ("it", _("Italian")),
    ("ru", _("Russian")),
    ("pl", _("Polish")),
    ("de", _("German")),
    ("fr", _("French")),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The offer's and product's own words (offers/translation.py): the English text is the main one,
# and a language without its own falls back to it.
MODELTRANSLATION_DEFAULT_LANGUAGE = "en"
MODELTRANSLATION_LANGUAGES = tuple(code for code, _name in LANGUAGES)
MODELTRANSLATION_FALLBACK_LANGUAGES = ("en",)
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ----------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # plotly.js from the pinned plotly package, for the dashboards (analytics/staticfiles.py).
    "analytics.staticfiles.PlotlyFinder",
]
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every request otherwise
    # Outside production WhiteNoise serves the files straight from static/ (the finders), and
    # looks again on every request, so there is no collectstatic step and an edited file shows
    # at once, with DEBUG on or off. The same middleware as production, rather than
    # `runserver --insecure`, so development serves static files the way production does.
    WHITENOISE_USE_FINDERS = True
    WHITENOISE_AUTOREFRESH = True
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
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

# --- Stripe (only billing/gateway.py reads these) --------------------------------------------
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", None if PRODUCTION else "sk_test_localstripe", required=PRODUCTION)
STRIPE_PUBLISHABLE_KEY = env_str(
    "STRIPE_PUBLISHABLE_KEY", None if PRODUCTION else "pk_test_localstripe", required=PRODUCTION
)
STRIPE_WEBHOOK_SECRET = env_str(
    "STRIPE_WEBHOOK_SECRET", None if PRODUCTION else "whsec_localstripe_dev", required=PRODUCTION
)
STRIPE_API_BASE = env_str("STRIPE_API_BASE", "https://api.stripe.com" if PRODUCTION else "http://127.0.0.1:8420")
STRIPE_JS_URL = env_str(
    "STRIPE_JS_URL", "https://js.stripe.com/v3/" if PRODUCTION else "http://127.0.0.1:8420/js.stripe.com/v3/"
)
STRIPE_TIMEOUT_SECONDS = env_float("STRIPE_TIMEOUT_SECONDS", 10.0)
STRIPE_MAX_NETWORK_RETRIES = env_int("STRIPE_MAX_NETWORK_RETRIES", 2, minimum=0)
STRIPE_WEBHOOK_TOLERANCE_SECONDS = 300
for _name in ("STRIPE_API_BASE", "STRIPE_JS_URL"):
    if urlsplit(globals()[_name]).scheme not in ("http", "https"):
        raise ImproperlyConfigured(f"{_name} must be an http(s) URL.")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", None if PRODUCTION else "filesystem://", required=PRODUCTION)
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Kombu's filesystem transport: a real broker with no server, for `make run`. In and out
    # folders are the same so that every process sees every message.
    _queue_dir = VAR_DIR / "celery" / "queue"
    _queue_dir.mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "celery" / "processed").mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "celery" / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        # Otherwise kombu writes its control exchange to ./control, wherever the process started.
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A request never waits on the broker: publishing after commit gives up after one immediate
    # reconnect (enough for a pooled connection that Redis dropped) and a 1 s connect timeout,
    # instead of kombu's default of retrying for seconds. What could not be queued is sent by a
    # beat job that scans the table (the outbox, the Stripe events).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.2,
        "socket_connect_timeout": 1,
    }
elif not CELERY_BROKER_URL.startswith(("amqp://", "memory://")):
    raise ImproperlyConfigured("CELERY_BROKER_URL must be redis://…, amqp://… or filesystem://.")
CELERY_BEAT_SCHEDULE_FILE = str(VAR_DIR / "celerybeat-schedule")
# Celery closes Django's database connection around every task unless told to reuse it; on
# PostgreSQL a new connection per task costs more than most of our tasks do.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000, minimum=0)

# --- API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.api_parsers.JSONBodyParser"],
    "EXCEPTION_HANDLER": "config.api.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Foretaste API",
    "DESCRIPTION": "Customers, purchases, offers and metrics. Authenticate with `Authorization: Token <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
}

# --- Security --------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Set by the proxy in front of gunicorn; only trust it because that proxy overwrites it.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz(/ready)?$"]

# Content-Security-Policy: our own origin, plus Stripe.js (the emulator's in development).
_STRIPE_JS_ORIGIN = _origin(STRIPE_JS_URL)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", _STRIPE_JS_ORIGIN],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'", _STRIPE_JS_ORIGIN, _origin(STRIPE_API_BASE)],
        "frame-src": [_STRIPE_JS_ORIGIN, "https://hooks.stripe.com"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}

# --- Logging ---------------------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # A refused request (403) is an answer, not a fault: one line, without the traceback.
    "filters": {"forbidden_without_traceback": {"()": "config.log_filters.ForbiddenWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "stripe": {"level": "WARNING"},
        "django.request": {"filters": ["forbidden_without_traceback"]},
        "django.security": {"filters": ["forbidden_without_traceback"]},
    },
}

# --- Test mode -------------------------------------------------------------------------------
if FORETASTE_ENV == "test":
    # Fast hashing; tasks run in the caller after commit. The worker integration test turns
    # eager mode off to go through a real broker and worker.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Persistent connections from the live server's thread would keep the test database busy.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_TASK_EAGER_PROPAGATES = True
