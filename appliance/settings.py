"""Settings for the appliance console.

Everything that differs between installations comes from environment variables,
read here once through strict parsers; app code reads ``django.conf.settings``.
The variables that seed the first configuration (hostname, listen address, admin
password) are read by the bootstrap, not here: afterwards the configuration rules.
"""

from __future__ import annotations

import os
import secrets
import urllib.parse
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def envint(name: str, default: int, minimum: int = 0, maximum: int = 2**31) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}")
    return value


def envchoice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip().upper()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def database(url: str, data_dir: Path) -> dict:
    """Django's default database: SQLite in the data directory (one appliance), or the PostgreSQL
    server of ``url`` (``postgres://user:password@host:port/name?sslmode=…``; psycopg 3), which
    several appliances can share."""
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": data_dir / "appliance.sqlite3",
            # The console, the services and the console commands all write: every
            # transaction takes the write lock up front and waits for it.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(
            f"APPLIANCE_DATABASE_URL must be a postgres:// address, not {parts.scheme or url!r}"
        )
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured("APPLIANCE_DATABASE_URL has a port that is not a number") from None
    options = dict(urllib.parse.parse_qsl(parts.query))
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": urllib.parse.unquote(parts.path.lstrip("/")) or "appliance",
        "USER": urllib.parse.unquote(parts.username or ""),
        "PASSWORD": urllib.parse.unquote(parts.password or ""),
        "HOST": options.pop("host", parts.hostname or ""),  # ?host=/run/postgresql: a socket folder
        "PORT": str(port or ""),
        "OPTIONS": {"connect_timeout": 5, **options},
        # Connections are kept, and one a restarted server broke is noticed and replaced.
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,
    }


def persistent_secret_key(data_dir: Path, shared_key_file: Path | None) -> str:
    """The SECRET_KEY: from APPLIANCE_SECRET_KEY(_FILE), else made once per data directory. On a shared
    database it is the operator's file, which must exist (made here, it would differ per machine)."""
    if shared_key_file:
        try:
            return shared_key_file.read_text().strip()
        except OSError as error:
            raise ImproperlyConfigured(
                f"APPLIANCE_SECRET_KEY_FILE {shared_key_file} cannot be read ({error.strerror}): on a shared "
                "database every machine needs a copy of the same key file"
            ) from None
    if os.environ.get("APPLIANCE_SECRET_KEY"):
        return os.environ["APPLIANCE_SECRET_KEY"]
    path = Path(os.environ.get("APPLIANCE_SECRET_KEY_FILE", data_dir / "secret_key"))
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def envdir(name: str, default: Path) -> Path:
    """A folder the appliance owns; set but empty is refused (it would be the current directory)."""
    raw = os.environ.get(name)
    if raw is None:
        return default.resolve()
    if not raw.strip():
        raise ImproperlyConfigured(f"{name} is set but empty: name a folder, or unset it for {default}")
    return Path(raw).resolve()


DATA_DIR = envdir("APPLIANCE_DATA_DIR", BASE_DIR / "var")
# Sessions, password hashes, the audit log and sealed keys: for the appliance's account only.
DATA_DIR.mkdir(parents=True, exist_ok=True)
DATA_DIR.chmod(0o700)
# A PostgreSQL server shared by the machines of a cluster, else SQLite in DATA_DIR.
DATABASE_URL = os.environ.get("APPLIANCE_DATABASE_URL", "").strip()
# On a shared database every machine seals secrets with the key of this one file (vault.py).
SHARED_KEY_FILE = Path(os.environ.get("APPLIANCE_SECRET_KEY_FILE", "")) if DATABASE_URL else None
if DATABASE_URL and not os.environ.get("APPLIANCE_SECRET_KEY_FILE"):
    raise ImproperlyConfigured(
        "APPLIANCE_DATABASE_URL needs APPLIANCE_SECRET_KEY_FILE: every machine sharing the database must "
        "seal secrets with the same key, a file the operator copies to each"
    )
SECRET_KEY = persistent_secret_key(DATA_DIR, SHARED_KEY_FILE)
DEBUG = envbool("APPLIANCE_DEBUG", "0")

# The console is reached by interface address or hostname, both of which the
# administrator changes at run time; gunicorn only listens on configured interfaces.
ALLOWED_HOSTS = os.environ.get("APPLIANCE_ALLOWED_HOSTS", "*").split(",")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "appliance",
    "certificates",
    "listeners",
    "destinations",
    "tracking",
    "gateway",
    "cluster",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "appliance.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "appliance.sessions.InactivityTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "appliance.modes.ModeMiddleware",
    "appliance.bodylimit.BodyLimitMiddleware",
]

ROOT_URLCONF = "appliance.urls"
WSGI_APPLICATION = "appliance.wsgi.application"
AUTH_USER_MODEL = "appliance.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"

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
                "appliance.context_processors.console",
                "cluster.context_processors.mode_bar",
            ],
        },
    },
]

DATABASES = {"default": database(DATABASE_URL, DATA_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("APPLIANCE_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Static files are served from the source folders (no collectstatic step).
WHITENOISE_USE_FINDERS = True

# A large configuration (10,000 destinations, 1,000 certificates) pasted or uploaded.
CONFIG_FILE_MAX_BYTES = envint("APPLIANCE_CONFIG_MAX_BYTES", 32 * 1024 * 1024, 1024)
# The largest request body (a configuration file and the form around it); above it, a 413 before reading
# (appliance.bodylimit).
DATA_UPLOAD_MAX_MEMORY_SIZE = CONFIG_FILE_MAX_BYTES + 64 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024

# appliance.csp: the vendored htmx and console.js are served from here, like the stylesheet.
CONTENT_SECURITY_POLICY = "default-src 'self'"

# Served only over HTTPS by gunicorn (wsgi.url_scheme is https).
SECURE_SSL_REDIRECT = True
SECURE_HSTS_SECONDS = envint("APPLIANCE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
SESSION_COOKIE_AGE = envint("APPLIANCE_SESSION_SECONDS", 8 * 3600, 60)
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Strict"
X_FRAME_OPTIONS = "DENY"

# gunicorn processes and threads serving the console.
WEB_WORKERS = envint("APPLIANCE_WEB_WORKERS", 2, 1, 64)
WEB_THREADS = envint("APPLIANCE_WEB_THREADS", 8, 1, 256)

# This machine's name in a cluster (runappliance --machine NAME sets it for its services); "" for an
# appliance of its own. Machine-level settings (IP interfaces) are those of this name.
MACHINE_NAME = os.environ.get("APPLIANCE_MACHINE", "").strip()

# Processes of the mail gateway that accept mail: one per core, as one saturates a core.
GATEWAY_PROCESSES = envint("APPLIANCE_GATEWAY_PROCESSES", os.cpu_count() or 1, 1, 64)
# Seconds an SMTP client may take for each command (RFC 5321's 5 minutes), and, while a listener is
# busy (stress), before its MAIL FROM: Postfix's smtpd_timeout 300s and, under stress, 10s.
SMTP_TIMEOUT_SECONDS = envint("APPLIANCE_SMTP_TIMEOUT", 300, 1, 3600)
SMTP_STRESS_TIMEOUT_SECONDS = envint("APPLIANCE_SMTP_STRESS_TIMEOUT", 10, 1, 3600)

# Failed logins allowed per user name and per client address in the window.
LOGIN_FAILURE_LIMIT = envint("APPLIANCE_LOGIN_FAILURE_LIMIT", 5, 1)
LOGIN_FAILURE_WINDOW_SECONDS = envint("APPLIANCE_LOGIN_FAILURE_WINDOW", 900, 1)

LOG_DIR = DATA_DIR / "logs"
LOG_DIR.mkdir(parents=True, exist_ok=True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "terminal": {"class": "logging.StreamHandler", "formatter": "plain"},
        "file": {
            "class": "logging.handlers.RotatingFileHandler",
            "filename": LOG_DIR / "console.log",
            "maxBytes": 10 * 1024 * 1024,
            "backupCount": 5,
            "formatter": "plain",
            "delay": True,
        },
    },
    "root": {"handlers": ["terminal", "file"], "level": envchoice("APPLIANCE_LOG_LEVEL", "INFO", LOG_LEVELS)},
    "loggers": {
        "django.security.DisallowedHost": {"level": "ERROR"},
        # aiosmtpd logs every SMTP command at INFO; the gateway's own record is mail_logs.
        "mail.log": {"level": "WARNING"},
        # What runappliance and rungateway print (Appliance ready, Warning:, Error:), kept in the file.
        "appliance.services": {"handlers": ["file"], "level": "INFO", "propagate": False},
    },
}
# gunicorn's own lines (errors, access) in its formats, to the terminal and the file alike
# (``gunicorn_conf.logconfig_dict``).
GUNICORN_LOGGING = {
    **LOGGING,
    "formatters": {
        **LOGGING["formatters"],
        "gunicorn": {
            "format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
        },
        "access": {"format": "%(message)s"},
    },
    "handlers": {
        **LOGGING["handlers"],
        "gunicorn_terminal": {
            "class": "logging.StreamHandler",
            "formatter": "gunicorn",
            "stream": "ext://sys.stdout",
        },
        "gunicorn_file": {**LOGGING["handlers"]["file"], "formatter": "gunicorn"},
        "access_terminal": {
            "class": "logging.StreamHandler",
            "formatter": "access",
            "stream": "ext://sys.stdout",
        },
        "access_file": {**LOGGING["handlers"]["file"], "formatter": "access"},
    },
    "loggers": {
        **LOGGING["loggers"],
        "gunicorn.error": {
            "handlers": ["gunicorn_terminal", "gunicorn_file"],
            "level": "INFO",
            "propagate": False,
        },
        "gunicorn.access": {
            "handlers": ["access_terminal", "access_file"],
            "level": "INFO",
            "propagate": False,
        },
    },
}
