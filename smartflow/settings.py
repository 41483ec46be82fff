"""SmartFlow settings.

The only settings module. Every value comes from the environment (an optional `.env`
file fills in what the environment does not set; the environment wins). Variable names
equal setting names, and every one is listed in `.env.example`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import django_stubs_ext
import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from billing.plans import Interval, Plan

# Django's generic classes take type arguments at run time too (`admin.ModelAdmin[User]`),
# as mypy --strict asks for.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


class _SetVariables(Mapping[str, str]):
    """The environment without its empty variables: `NAME=` (as in a copied .env.example)
    means "use the default", never "off" (django-environ reads "" as a false bool) nor a
    crash (nor "" as a number)."""

    def __getitem__(self, name: str) -> str:
        value = os.environ[name]
        if value == "":
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for name, value in os.environ.items() if value != "")

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Env(environ.Env):
    ENVIRON = _SetVariables()


env = _Env()
# The .env file: `make run` writes one for local use (smartflow/devenv.py). ENV_FILE names
# another file; the test suite sets ENV_FILE=/dev/null so that a developer's .env never
# changes what the tests see. read_env never overwrites variables already set, so the
# environment wins.
ENV_FILE = Path(os.environ.get("ENV_FILE") or BASE_DIR / ".env")
if os.environ.get("ENV_FILE") and not ENV_FILE.exists():
    raise ImproperlyConfigured(f"ENV_FILE={ENV_FILE} does not exist.")
if ENV_FILE.exists():
    environ.Env.read_env(ENV_FILE)

DEBUG = env.bool("DEBUG", default=False)

# --- Secret key -------------------------------------------------------------------------
# A dev key is tolerated only with DEBUG on; anything reachable must bring its own.
_DEV_SECRET_KEY = "dev-only-not-secret-0b7d6e1c9a2f4e8d8c3b5a7f6e4d2c1b0a9f8e7d6c5b4a3"
SECRET_KEY = env.str("SECRET_KEY", default="")


def _secret_key_is_weak(key: str) -> bool:
    # Same thresholds as Django's security.W009 check.
    return len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure-")


if _secret_key_is_weak(SECRET_KEY):
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is missing or weak. With DEBUG off, set SECRET_KEY to a random "
            "string of at least 50 characters, e.g. the output of "
            '`python -c "import secrets; print(secrets.token_urlsafe(50))"`.'
        )
    SECRET_KEY = SECRET_KEY or _DEV_SECRET_KEY

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- Stripe or its sandbox -------------------------------------------------------------
# Decided before the applications: the offline Stripe sandbox (devtools/stripe_sandbox) is an app,
# installed only when on. It stands in for Stripe's API when no key is configured. Unset,
# it is on only for local use (DEBUG on, no secret key); with DEBUG off it must be asked
# for explicitly, and it never runs beside a live key.
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
STRIPE_TEST_SECRET_KEY = env.str("STRIPE_TEST_SECRET_KEY", default="")
STRIPE_LIVE_SECRET_KEY = env.str("STRIPE_LIVE_SECRET_KEY", default="")
_sandbox_explicit = env.bool("STRIPE_SANDBOX", default=None)
_has_stripe_key = bool(STRIPE_LIVE_SECRET_KEY if STRIPE_LIVE_MODE else STRIPE_TEST_SECRET_KEY)
if _sandbox_explicit is None:
    STRIPE_SANDBOX = DEBUG and not _has_stripe_key and not STRIPE_LIVE_MODE
else:
    STRIPE_SANDBOX = _sandbox_explicit
if STRIPE_SANDBOX:
    if STRIPE_LIVE_MODE or STRIPE_LIVE_SECRET_KEY.startswith("sk_live_"):
        raise ImproperlyConfigured(
            "STRIPE_SANDBOX cannot run with a live Stripe key or STRIPE_LIVE_MODE on. "
            "Unset STRIPE_LIVE_SECRET_KEY/STRIPE_LIVE_MODE or turn STRIPE_SANDBOX off."
        )
    # dj-stripe validates the key's format on every sync; the sandbox ignores its value.
    STRIPE_TEST_SECRET_KEY = "sk_test_SmartFlowSandbox000000000000000000"

# --- Applications -----------------------------------------------------------------------
INSTALLED_APPS = [
    # Django's admin with SmartFlow's site (backoffice/site.py).
    "backoffice.apps.SmartFlowAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Before staticfiles so that runserver serves static files the way gunicorn will.
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "phonenumber_field",
    # Content-Security-Policy (its system checks; the header comes from its middleware).
    "csp",
    "djstripe",
    "django_tasks",
    "django_tasks_db",
    "accounts",
    "billing",
    "onboarding",
    # Personal data: "download my data" and "delete my account" (docs/personal-data.md).
    "privacy",
    # The admin: its site, the staff pages and the staff roles.
    "backoffice",
    # Project-wide management commands (run_banner).
    "smartflow",
    # Installed only when on: its pages, API, clock, deliveries and command (and its
    # tables) do not exist on a site that talks to real Stripe.
    *(["devtools.stripe_sandbox"] if STRIPE_SANDBOX else []),
    # Email through the ESP named by ANYMAIL_ESP (Onboarding, below).
    "anymail",
    # Login rate limiting (Back-office, below).
    "axes",
    # Sign-up, login, email verification and change, password reset, rate limits
    # (django-allauth's account app), and staff two-factor login (its mfa app): Accounts.
    "allauth",
    "allauth.account",
    "allauth.mfa",
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
    "allauth.account.middleware.AccountMiddleware",
    # Staff sessions without their second factor reach only the steps to get it (Accounts).
    "backoffice.middleware.Staff2FAMiddleware",
    # Last, as django-axes requires (Back-office, below).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "smartflow.urls"
WSGI_APPLICATION = "smartflow.wsgi.application"

TEMPLATES: list[dict[str, Any]] = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # The failed-payment banner on every page (billing/dunning.py).
                "billing.context_processors.dunning",
                # With the sandbox, every page says "Sandbox: no real payments".
                *(["devtools.stripe_sandbox.context_processors.sandbox"] if STRIPE_SANDBOX else []),
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the task worker share the file: WAL plus a busy timeout stops
    # "database is locked", and IMMEDIATE transactions take the write lock up front
    # instead of failing on lock upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; PRAGMA synchronous=NORMAL;"
            ),
            "transaction_mode": "IMMEDIATE",
        }
    )
    # (The tests' own SQLite file: tests/conftest.py.)
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The webhook acknowledgement's one statement is prepared on each connection (billing/
# speedups.py). Off behind a connection pooler that cannot keep prepared statements
# (PgBouncer in transaction mode before 1.21), as Django leaves its own off.
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
# The bench's switch (devtools/bench/run.py, `--only speed`): pieces of speed work to turn off, so
# each is measured against its plain version in one run: "ack" (the acknowledgement's one
# prepared statement), "gc_freeze" (reconcile_plans; billing/speedups.py), "event_scope"
# (what one webhook event's processing remembers: billing/event_scope.py), "invoice_expand"
# (an invoice's subscription read with it, in the same scope), "synced_rows" (the rows it
# synced, ibid.), "web_gc_freeze" (the web process's start-up heap: smartflow/wsgi.py;
# measured by the renewal storm, `--only storm`, in benches alternating with it set).
# Empty in production.
SPEED_PLAIN = env.list("SPEED_PLAIN", default=[])

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The cache holds the rate limits (sign-up, login, reset, checkout) and the TOTP codes
# already used: it must be one for every web process and machine, or each gunicorn worker
# would count and remember on its own. The database's (its table comes with `migrate`,
# smartflow/migrations/0003_cache_table.py) needs no other service; CACHE_URL (e.g.
# redis://127.0.0.1:6379/1) moves it to Redis where there is one.
CACHES = {"default": env.cache_url("CACHE_URL", default="dbcache://smartflow_cache")}

# --- Accounts ---------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "accounts:dashboard"
LOGOUT_REDIRECT_URL = "account_login"
# django-allauth (its apps: "Applications" above). Its account pages answer at the paths
# customers know (/signup/, /login/, /logout/, /password/reset/, /password/change/, /email/),
# its two-factor pages under /account/2fa/ (smartflow/urls.py).
# Customers log in with their email address; there is no username.
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
# allauth's sign-up form with the optional mobile number and SMS consent (accounts/forms.py).
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm"}
# Emails go through the outbox (onboarding/account_mail.py); addresses are normalised,
# links use SITE_URL, the client address is accounts.ratelimit.client_ip's
# (accounts/adapter.py).
ACCOUNT_ADAPTER = "onboarding.account_mail.AccountAdapter"
# "mandatory": a new account logs in once its address is confirmed (the link in the email
# signs it in). Only then can signup answer a new and a taken address alike ("check your
# email"); "optional" would sign the new one in and so tell them apart. Payment checks the
# address too (billing/decorators.py), for sessions older than this rule.
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
# Signup and password reset say the same whether or not an address has an account: the
# owner of a taken address gets an email instead; unknown addresses get one saying so.
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = True
# Changing the email replaces the address once the new one is confirmed; the old address
# is told (email_changed), as are password changes and resets.
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_EMAIL_NOTIFICATIONS = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "SmartFlow: "
# Sessions last as long as Django's SESSION_COOKIE_AGE, as before (no "remember me" box).
ACCOUNT_SESSION_REMEMBER = True
# Throttles, per address ("ip", behind AXES_IPWARE_PROXY_COUNT proxies, see
# accounts.ratelimit.client_ip), per account ("user") and per email typed ("key"); over
# a limit the page is templates/429.html. They count in Django's cache (CACHES).
ACCOUNT_RATE_LIMITS = {
    "signup": "10/h/ip",
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "reset_password": "20/h/ip,5/h/key",
    "reset_password_from_key": "20/m/ip",
    "confirm_email": "1/3m/key",
    "manage_email": "10/h/user,20/h/ip",
    "change_password": "5/m/user",
    "reauthenticate": "10/m/user",
}
# Two-factor login for staff: TOTP apps with recovery codes (no WebAuthn keys).
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
# Every staff account and superuser signs in with a TOTP code (or a recovery code) before
# any page answers it (backoffice/staff_2fa.py, docs/staff-2fa.md); off only with DEBUG on,
# and the tests' own environment (pyproject.toml). backoffice.E001 refuses it off in a deploy.
STAFF_2FA_REQUIRED = env.bool("STAFF_2FA_REQUIRED", default=not DEBUG)
# Staff may not switch their own app off while it is required; the QR code is inline SVG.
MFA_ADAPTER = "backoffice.staff_2fa.StaffMFAAdapter"
# The name authenticator apps list the code under.
MFA_TOTP_ISSUER = "SmartFlow"
# The codes one 30 s step either side of the current one count too: phones' clocks drift,
# and a code typed as it turns over is not refused (RFC 6238, section 5.2).
MFA_TOTP_TOLERANCE = 1
PHONENUMBER_DEFAULT_REGION = env.str("PHONENUMBER_DEFAULT_REGION", default="GB")
PHONENUMBER_DB_FORMAT = "E164"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Email ------------------------------------------------------------------------------
# Console (printed to the log) for local use; with DEBUG off Django's SMTP backend, so that
# no email is ever printed where log readers see it (onboarding.E001 refuses the console
# backend with DEBUG off unless EMAIL_BACKEND_ALLOW_CONSOLE says so on purpose).
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends."
    + ("console.EmailBackend" if DEBUG else "smtp.EmailBackend"),
)
EMAIL_BACKEND_ALLOW_CONSOLE = env.bool("EMAIL_BACKEND_ALLOW_CONSOLE", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="no-reply@smartflowsystems.com")
# Reply-To of every customer email: where "reply to this email" reaches a person. Unset
# (or empty), support@smartflowsystems.com: never the no-reply sender.
SUPPORT_EMAIL = env.str("SUPPORT_EMAIL", default="") or "support@smartflowsystems.com"

# Absolute base URL of the site as customers reach it (links in emails, webhook targets).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- Stripe (dj-stripe) -----------------------------------------------------------------
# The mode, the keys and STRIPE_SANDBOX: "Stripe or its sandbox", above.
# Pinned: unset, it would follow whatever stripe-python happens to be installed.
STRIPE_API_VERSION = "2026-08-26.dahlia"
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
DJSTRIPE_WEBHOOK_TOLERANCE = env.int("DJSTRIPE_WEBHOOK_TOLERANCE", default=300)
# With DEBUG on, dj-stripe takes an X-Djstripe-Webhook-Secret header in place of the
# endpoint's secret (for forwarding with the Stripe CLI), so anyone who reaches the
# server could sign events with a secret of their own. The webhook guard
# (billing/views.py) refuses requests carrying it unless this is set explicitly.
STRIPE_WEBHOOK_DEBUG_HEADER = env.bool("STRIPE_WEBHOOK_DEBUG_HEADER", default=False)

# Requests per second that every process of this deployment together sends to Stripe
# (billing/stripe_pace.py): Stripe allows 100 in live mode and 25 in test mode per
# account, and answers 429 beyond. The default is half the mode's limit, leaving the rest
# for the Dashboard, the Stripe CLI and other applications on the account; 0 turns the
# pacing off (a 429 is still waited out and asked again).
STRIPE_RATE_LIMIT = env.float("STRIPE_RATE_LIMIT", default=50.0 if STRIPE_LIVE_MODE else 12.5)
if STRIPE_RATE_LIMIT < 0:
    raise ImproperlyConfigured("STRIPE_RATE_LIMIT is requests per second: 0 (off) or more.")

# Milliseconds the sandbox waits before answering each API request, standing in for
# Stripe's own latency (`make bench` runs once with 300); 0 answers at once.
STRIPE_SANDBOX_LATENCY_MS = env.int("STRIPE_SANDBOX_LATENCY_MS", default=0)


def _sandbox_rate_limit(raw: str) -> float:
    """STRIPE_SANDBOX_RATE_LIMIT as requests per second, 0.0 for off. A number is always a
    rate, so "1" means one request a second, never "on"; the words name Stripe's limits."""
    value = raw.strip().lower()
    if value in {"", "off"}:
        return 0.0
    if value in {"on", "test"}:
        return 25.0  # Stripe's global limit in test mode (sandboxes)
    if value == "live":
        return 100.0  # and in live mode
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not 0 <= rate < float("inf"):  # also refuses nan
        raise ImproperlyConfigured(
            "STRIPE_SANDBOX_RATE_LIMIT must be off (or 0), test or on (Stripe's test-mode "
            "limit, 25 requests a second), live (100) or a number of requests a second, "
            f"not {raw!r}."
        )
    return rate


# Requests a second the sandbox answers, for the whole sandbox (every process); beyond it
# it answers 429 as Stripe does (devtools/stripe_sandbox/ratelimit.py). Off by default.
STRIPE_SANDBOX_RATE_LIMIT = _sandbox_rate_limit(env.str("STRIPE_SANDBOX_RATE_LIMIT", default=""))
# The sandbox's dunning. "smart" (Stripe's default, Smart Retries): up to
# STRIPE_SANDBOX_SMART_RETRIES retries within STRIPE_SANDBOX_SMART_RETRY_DAYS of the failed
# renewal, at times the sandbox draws from STRIPE_SANDBOX_SEED (devtools/stripe_sandbox/README.md);
# "fixed" (Stripe's custom retry schedule): retried STRIPE_SANDBOX_RETRY_DAYS days after the
# previous attempt, one number per retry. After the last failed retry the subscription is
# canceled, marked unpaid, or left past_due.
STRIPE_SANDBOX_RETRY_POLICY = env.str("STRIPE_SANDBOX_RETRY_POLICY", default="smart").lower()
if STRIPE_SANDBOX_RETRY_POLICY not in {"smart", "fixed"}:
    raise ImproperlyConfigured("STRIPE_SANDBOX_RETRY_POLICY must be smart or fixed.")
STRIPE_SANDBOX_SMART_RETRIES = env.int("STRIPE_SANDBOX_SMART_RETRIES", default=8)
STRIPE_SANDBOX_SMART_RETRY_DAYS = env.int("STRIPE_SANDBOX_SMART_RETRY_DAYS", default=14)
# The windows of Stripe's dashboard (1, 2 or 3 weeks, 1 or 2 months); at most 8 retries.
if not 1 <= STRIPE_SANDBOX_SMART_RETRIES <= 8:
    raise ImproperlyConfigured("STRIPE_SANDBOX_SMART_RETRIES must be 1 to 8.")
if STRIPE_SANDBOX_SMART_RETRY_DAYS not in {7, 14, 21, 30, 60}:
    raise ImproperlyConfigured("STRIPE_SANDBOX_SMART_RETRY_DAYS must be 7, 14, 21, 30 or 60.")
try:
    STRIPE_SANDBOX_RETRY_DAYS = [
        int(days) for days in env.list("STRIPE_SANDBOX_RETRY_DAYS", default=["3", "5", "7"])
    ]
except ValueError as exc:
    raise ImproperlyConfigured(
        "STRIPE_SANDBOX_RETRY_DAYS must be comma-separated whole days, e.g. 3,5,7."
    ) from exc
if any(days < 1 for days in STRIPE_SANDBOX_RETRY_DAYS):
    raise ImproperlyConfigured("STRIPE_SANDBOX_RETRY_DAYS: each retry is at least 1 day later.")
STRIPE_SANDBOX_DUNNING_END = env.str("STRIPE_SANDBOX_DUNNING_END", default="cancel")
if STRIPE_SANDBOX_DUNNING_END not in {"cancel", "unpaid", "past_due"}:
    raise ImproperlyConfigured("STRIPE_SANDBOX_DUNNING_END must be cancel, unpaid or past_due.")
# How the sandbox delivers webhooks: "stripe" as Stripe does (at least once, in no
# guaranteed order: each after a random short delay, some twice, failures retried for up
# to three days on the sandbox clock); "ordered" one by one in the order they happened,
# for debugging. The randomness follows STRIPE_SANDBOX_SEED (unset: a random one, logged
# at start-up), so that a run can be replayed.
STRIPE_SANDBOX_DELIVERY = env.str("STRIPE_SANDBOX_DELIVERY", default="stripe").lower()
if STRIPE_SANDBOX_DELIVERY not in {"stripe", "ordered"}:
    raise ImproperlyConfigured(
        f"STRIPE_SANDBOX_DELIVERY must be stripe or ordered, not {STRIPE_SANDBOX_DELIVERY!r}."
    )
_seed = env.str("STRIPE_SANDBOX_SEED", default="").strip()
if _seed and not _seed.isdigit():
    raise ImproperlyConfigured(f"STRIPE_SANDBOX_SEED must be a whole number, not {_seed!r}.")
STRIPE_SANDBOX_SEED = int(_seed) if _seed else secrets.randbelow(1_000_000)
# Billing is on when something answers Stripe's API: a real key or the sandbox.
BILLING_ENABLED = STRIPE_SANDBOX or _has_stripe_key
BILLING_PAST_DUE_GRACE_DAYS = env.int("BILLING_PAST_DUE_GRACE_DAYS", default=7)
# What becomes of the open invoices of a subscription that ended unpaid (billing/
# dunning_end.py): void, or uncollectible as the Stripe account's "if all retries for a
# payment fail" invoice setting says.
BILLING_UNPAID_INVOICES = env.str("BILLING_UNPAID_INVOICES", default="void")
if BILLING_UNPAID_INVOICES not in {"void", "uncollectible"}:
    raise ImproperlyConfigured("BILLING_UNPAID_INVOICES must be void or uncollectible.")
BILLING_CURRENCY = env.str("BILLING_CURRENCY", default="gbp").lower()
# How often one customer (user) and one address (ip) may ask for something that calls
# Stripe (billing/ratelimit.py): "checkout" counts each checkout, switch, downgrade,
# cancellation, resumption and portal opening; "preview" each page that reads Stripe
# (an upgrade's price, a payment being confirmed: the success page reloads every 3 s).
# django-allauth's rate format: "<amount>/<period s|m|h|d>/<user|ip>", comma-separated.
# BILLING_RATE_LIMITS='{"checkout": "5/m/user"}' replaces only the actions it names.
BILLING_RATE_LIMITS: dict[str, str] = {
    "checkout": "10/m/user,30/h/user,60/h/ip",
    "preview": "40/m/user,600/h/user",
    **env.json("BILLING_RATE_LIMITS", default={}),
}
# Free trial days of a customer's first subscription, through Checkout (0: no trials).
BILLING_TRIAL_DAYS = env.int("BILLING_TRIAL_DAYS", default=0)
if not 0 <= BILLING_TRIAL_DAYS <= 730:  # Stripe's limit for trial_period_days
    raise ImproperlyConfigured(
        f"BILLING_TRIAL_DAYS must be between 0 and 730, not {BILLING_TRIAL_DAYS}."
    )
# Stripe Tax in Checkout (automatic_tax, the billing address and VAT numbers collected).
BILLING_AUTOMATIC_TAX = env.bool("BILLING_AUTOMATIC_TAX", default=False)
# Whether new prices include the tax (`inclusive`) or have it added (`exclusive`).
BILLING_TAX_BEHAVIOR = env.str("BILLING_TAX_BEHAVIOR", default="exclusive").lower()
if BILLING_TAX_BEHAVIOR not in ("exclusive", "inclusive"):
    raise ImproperlyConfigured(
        f"BILLING_TAX_BEHAVIOR must be exclusive or inclusive, not {BILLING_TAX_BEHAVIOR!r}"
    )
# Existing Price ids (the original app's variables) win over lookup keys when set: one
# STRIPE_PRICE_<PLAN>_<INTERVAL> per plan and interval of billing/plans.py, so a plan
# added there has its variables too. (billing.plans imports no app and reads no setting
# when imported: safe here.)
STRIPE_PRICE_IDS = {
    (plan, interval): price_id
    for plan in Plan.values
    for interval in Interval.values
    if (price_id := env.str(f"STRIPE_PRICE_{plan.upper()}_{interval.upper()}", default=""))
}
# The Billing Portal configuration every portal session uses (bpc_...). Unset, the app
# finds the one `manage.py billing_portal` made by its metadata (billing/portal.py).
STRIPE_PORTAL_CONFIGURATION = env.str("STRIPE_PORTAL_CONFIGURATION", default="")

# --- Background tasks -------------------------------------------------------------------
# Tasks are rows in our own database, so enqueueing joins the caller's transaction.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# `manage.py worker` (smartflow/workers.py): a heartbeat every WORKER_HEARTBEAT_SECONDS;
# every WORKER_RECOVER_SECONDS it queues again the tasks of workers silent for
# WORKER_STALE_SECONDS. The defaults suit production; the tests that kill a worker shorten
# them so that recovery happens within seconds.
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=15)
WORKER_RECOVER_SECONDS = env.float("WORKER_RECOVER_SECONDS", default=60)
WORKER_STALE_SECONDS = env.float("WORKER_STALE_SECONDS", default=120)
# Tasks one `manage.py worker` runs at once, each in a thread with its own database
# connection: a webhook's processing mostly waits on Stripe, so threads multiply what a
# process gets through until Stripe's rate limit (STRIPE_RATE_LIMIT) or the CPU is the
# bound. The default is the best of `make bench`'s renewal storm on 2 cores with 2 workers
# (8, 16, 24, 32 tried: 16 drained fastest; more threads only fought for the CPU;
# devtools/bench/RESULTS.md). SQLite lets one transaction write at a time, and an
# event's processing holds its transaction across its Stripe calls: there the worker runs
# one task at a time whatever this says.
WORKER_CONCURRENCY = env.int("WORKER_CONCURRENCY", default=16)
if WORKER_CONCURRENCY < 1:
    raise ImproperlyConfigured("WORKER_CONCURRENCY must be 1 or more.")
if not 0 < WORKER_HEARTBEAT_SECONDS * 2 <= WORKER_STALE_SECONDS or WORKER_RECOVER_SECONDS <= 0:
    # A stale time within two beats would take a live worker's tasks from it.
    raise ImproperlyConfigured(
        "WORKER_STALE_SECONDS must be at least twice WORKER_HEARTBEAT_SECONDS (both > 0), "
        "and WORKER_RECOVER_SECONDS > 0."
    )

# --- Retention (personal data kept only as long as needed) -----------------------------
# The worker purges, in batches, once every RETENTION_EVERY_HOURS (smartflow/retention.py;
# the periods and why each is what it is: docs/operations.md, "Retention"):
# finished task rows after RETENTION_TASK_DAYS, the bodies of processed Stripe webhooks
# after RETENTION_WEBHOOK_BODY_DAYS (Stripe keeps an event 30 days), django-axes' login
# records after RETENTION_LOGIN_RECORD_DAYS, and the words of sent customer messages after
# RETENTION_MESSAGE_BODY_DAYS (the fact that each was sent stays).
RETENTION_EVERY_HOURS = env.int("RETENTION_EVERY_HOURS", default=24)
RETENTION_TASK_DAYS = env.int("RETENTION_TASK_DAYS", default=14)
RETENTION_WEBHOOK_BODY_DAYS = env.int("RETENTION_WEBHOOK_BODY_DAYS", default=30)
RETENTION_LOGIN_RECORD_DAYS = env.int("RETENTION_LOGIN_RECORD_DAYS", default=90)
RETENTION_MESSAGE_BODY_DAYS = env.int("RETENTION_MESSAGE_BODY_DAYS", default=180)
if (
    RETENTION_EVERY_HOURS < 1
    or min(RETENTION_WEBHOOK_BODY_DAYS, RETENTION_LOGIN_RECORD_DAYS, RETENTION_MESSAGE_BODY_DAYS)
    < 1
):
    raise ImproperlyConfigured(
        "RETENTION_EVERY_HOURS and every RETENTION_*_DAYS must be at least 1."
    )
# A webhook task that failed outright is queued again for three days (billing/
# webhook_queue.py, failed_tasks_requeue): its row must outlive that.
if RETENTION_TASK_DAYS < 3:
    raise ImproperlyConfigured(
        "RETENTION_TASK_DAYS must be at least 3: failed webhook tasks are retried for 3 days."
    )

# --- Stripe events never received (billing/webhook_recover.py) ------------------------
# Once every WEBHOOK_RECOVER_EVERY_HOURS one worker lists Stripe's events of the last two
# periods (Events API) and queues those no webhook brought; 0 turns it off (then run
# `manage.py billing_webhooks --recover --since 2d` by hand).
WEBHOOK_RECOVER_EVERY_HOURS = env.int("WEBHOOK_RECOVER_EVERY_HOURS", default=24)
if not 0 <= WEBHOOK_RECOVER_EVERY_HOURS <= 15 * 24:
    # Looking back two periods must stay inside the 30 days Stripe keeps its events.
    raise ImproperlyConfigured("WEBHOOK_RECOVER_EVERY_HOURS must be between 0 (off) and 360.")

# --- Onboarding (email through django-anymail, SMS through Twilio) ----------------------
# Email: ANYMAIL_ESP names an anymail backend (sendgrid, postmark, mailgun, amazon_ses,
# brevo, resend, ...) and then wins over EMAIL_BACKEND; unset, EMAIL_BACKEND (above)
# applies: console by default, or django.core.mail.backends.smtp.EmailBackend with EMAIL_HOST...
ANYMAIL_ESP = env.str("ANYMAIL_ESP", default="").strip().lower()
if ANYMAIL_ESP:
    import importlib.util

    if ANYMAIL_ESP in ("base", "base_requests") or not importlib.util.find_spec(
        f"anymail.backends.{ANYMAIL_ESP}"
    ):
        raise ImproperlyConfigured(
            f"ANYMAIL_ESP={ANYMAIL_ESP!r} is not an anymail backend; use its module name, "
            "e.g. sendgrid, postmark, mailgun, amazon_ses, brevo."
        )
    EMAIL_BACKEND = f"anymail.backends.{ANYMAIL_ESP}.EmailBackend"
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
# Django's default is no timeout: a stalled SMTP server would hang the worker.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)


def _anymail_value(name: str, raw: str) -> object:
    # Environment values are strings; anymail wants some as bool, number or dict.
    import json

    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if raw[:1] in ("{", "["):
        return json.loads(raw)
    if name.endswith("_TIMEOUT"):
        return float(raw)
    return raw


# Every ANYMAIL_<NAME> variable becomes ANYMAIL["<NAME>"], which anymail reads exactly as
# it would a setting ANYMAIL_<NAME>: so each ESP's documented settings work as variables,
# e.g. ANYMAIL_POSTMARK_SERVER_TOKEN, ANYMAIL_MAILGUN_SENDER_DOMAIN.
_ANYMAIL_OWN = {"ANYMAIL_ESP", "ANYMAIL_API_KEY", "ANYMAIL_WEBHOOK_SECRET"}
ANYMAIL: dict[str, object] = {
    name.removeprefix("ANYMAIL_"): _anymail_value(name, value)
    for name, value in sorted(env.ENVIRON.items())
    if name.startswith("ANYMAIL_") and name not in _ANYMAIL_OWN and value
}
# Shorthand for the ESP's main credential, under the name that ESP uses.
_ESP_CREDENTIAL = {
    "postmark": "SERVER_TOKEN",
    "mailersend": "API_TOKEN",
    "mailtrap": "API_TOKEN",
    "scaleway": "SECRET_KEY",
}
if ANYMAIL_ESP and (_api_key := env.str("ANYMAIL_API_KEY", default="")):
    _credential = _ESP_CREDENTIAL.get(ANYMAIL_ESP, "API_KEY")
    ANYMAIL.setdefault(f"{ANYMAIL_ESP.upper()}_{_credential}", _api_key)
# "user:password" for the tracking webhooks' basic auth; two, comma-separated, while
# rotating. Unset, the webhooks answer 403 (onboarding/urls.py).
ANYMAIL["WEBHOOK_SECRET"] = env.list("ANYMAIL_WEBHOOK_SECRET", default=[])

# SMS: on when the account, token and a sender are set; otherwise recorded as skipped.
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_PHONE_NUMBER = env.str("TWILIO_PHONE_NUMBER", default="")
TWILIO_MESSAGING_SERVICE_SID = env.str("TWILIO_MESSAGING_SERVICE_SID", default="")

# Transient failures are retried after ONBOARDING_RETRY_SECONDS, doubling each time, up to
# ONBOARDING_MAX_ATTEMPTS attempts in all.
ONBOARDING_MAX_ATTEMPTS = env.int("ONBOARDING_MAX_ATTEMPTS", default=5)
ONBOARDING_RETRY_SECONDS = env.int("ONBOARDING_RETRY_SECONDS", default=60)

# --- Back-office (admin, roles, login rate limiting) ------------------------------------
# (owned by the back-office work; see backoffice/)
# Path of the Django admin, without slashes; move it off /admin/ to dodge scanners.
ADMIN_URL = env.str("ADMIN_URL", default="admin").strip("/")

# Login rate limiting (django-axes) for the customer login and the admin alike: after
# AXES_FAILURE_LIMIT failures for one username from one IP, that pair is locked out for
# AXES_COOLOFF_TIME. Its app and middleware (last, as axes requires) are in the lists above.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # Logs in by email address for allauth's views (Accounts, above).
    "allauth.account.auth_backends.AuthenticationBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]


def _duration(value: str) -> timedelta:
    # "30m" or "2h"; a bare number is hours, as in django-axes.
    value = value.strip().lower()
    try:
        if value.endswith("m"):
            return timedelta(minutes=float(value[:-1]))
        return timedelta(hours=float(value.removesuffix("h")))
    except ValueError:
        raise ImproperlyConfigured(
            f"AXES_COOLOFF_TIME={value!r}: use minutes or hours, e.g. 30m or 1h."
        ) from None


AXES_COOLOFF_TIME = _duration(env.str("AXES_COOLOFF_TIME", default="1h"))
AXES_RESET_ON_SUCCESS = True
# The customer login (allauth's) posts the email address in "login", the admin's in
# "username": accounts.ratelimit.axes_username reads both.
AXES_USERNAME_FORM_FIELD = "login"
# Count "Ann@X.com" and "ann@x.com" as one account, as the login itself does.
AXES_USERNAME_CALLABLE = "accounts.ratelimit.axes_username"
# Number of reverse proxies in front of the app (0: clients connect directly). The client
# is the address the outermost of our proxies saw; headers a client sends are ignored.
AXES_IPWARE_PROXY_COUNT = env.int("AXES_IPWARE_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "accounts.ratelimit.client_ip"
AXES_LOCKOUT_TEMPLATE = "axes/lockout.html"

# --- Benchmark ---------------------------------------------------------------------------
# Mounts /bench/... (devtools/bench/urls.py): the ceiling views `make bench` measures the app
# against. Off unless asked for; nothing in production needs them.
BENCH_VIEWS = env.bool("BENCH_VIEWS", default=False)

# --- Internationalisation ---------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
# Dates in one format, 2026-01-31 14:05, wherever Django formats them (smartflow/formats/).
FORMAT_MODULE_PATH = ["smartflow.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Security ---------------------------------------------------------------------------
# On unless DEBUG is on; each can be set on its own (tests over plain HTTP turn the
# cookie and redirect flags off).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
# Behind a TLS-terminating proxy, e.g. SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https
_proxy_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_header:
    if len(_proxy_header) != 2:
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER takes two comma-separated values, "
            "e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    SECURE_PROXY_SSL_HEADER = (_proxy_header[0], _proxy_header[1])
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts, styles, images and fonts from our own
# origin only, so no inline script or style anywhere (templates use static files; the
# Django admin needs none). Forms may post to us and be redirected on to Stripe's
# Checkout and Billing Portal, or to SITE_URL (the sandbox's pages); browsers check
# form-action along the redirects too.
_site = urlsplit(SITE_URL)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [
            SELF,
            f"{_site.scheme}://{_site.netloc}",
            "https://checkout.stripe.com",
            "https://billing.stripe.com",
        ],
    },
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- Operations: errors and alerts, health checks, the webhook endpoint -----------------
# (docs/operations.md)
# Who is emailed server errors (500s) and each new billing alert, through EMAIL_BACKEND
# (anymail when ANYMAIL_ESP is set): `Ops <ops@example.com>, Jo <jo@example.com>`. Empty:
# nobody (onboarding.W001 says so in `check --deploy`).


def _admins(raw: str) -> list[tuple[str, str]]:
    from email.utils import getaddresses

    admins = []
    for name, address in getaddresses([raw]) if raw.strip() else []:
        if "@" not in address or any(c.isspace() for c in address):
            raise ImproperlyConfigured(
                f"ADMINS: {address or raw!r} is not an email address; use "
                "`Name <address>` entries separated by commas."
            )
        admins.append((name or address, address))
    return admins


ADMINS = _admins(env.str("ADMINS", default=""))
# The sender of those emails (Django's name for it).
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
EMAIL_SUBJECT_PREFIX = env.str("EMAIL_SUBJECT_PREFIX", default="[SmartFlow] ")
# Errors, and log records at ERROR, to Sentry (sentry-sdk with its Django integration)
# when set; what it collects: smartflow/sentry.py. SENTRY_TRACES_SAMPLE_RATE
# above 0 also sends that share of requests as performance traces.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="development" if DEBUG else "production")
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)
if not 0 <= SENTRY_TRACES_SAMPLE_RATE <= 1:
    raise ImproperlyConfigured("SENTRY_TRACES_SAMPLE_RATE must be between 0 and 1.")
if SENTRY_DSN:
    from smartflow.sentry import sentry_configure

    sentry_configure(
        dsn=SENTRY_DSN,
        environment=SENTRY_ENVIRONMENT,
        traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE,
    )
# /healthz and /healthz/ready (smartflow/health.py) tell anyone only "ok" or not; the
# details (workers, hosts, backlogs) need a staff login or `Authorization: Bearer
# <HEALTHZ_TOKEN>`. Empty: no token, staff only.
HEALTHZ_TOKEN = env.str("HEALTHZ_TOKEN", default="")
# /healthz/ready says "degraded" (503) when the oldest due task or due webhook delivery
# has waited longer than this, or when no worker's heartbeat is live.
HEALTHZ_BACKLOG_MAX_SECONDS = env.int("HEALTHZ_BACKLOG_MAX_SECONDS", default=300)
# The Stripe webhook refuses a larger body with 413 before reading it (billing/views.py).
# Stripe documents no maximum; its events embed lists cut at 10 items (`has_more`), so
# they stay within tens of KB. mozilla/fxa refused real Stripe events at 52 KB and
# settled on 1 MB (github.com/mozilla/fxa/issues/8861, pull 8873): 1 MiB, as theirs.
STRIPE_WEBHOOK_MAX_BYTES = env.int("STRIPE_WEBHOOK_MAX_BYTES", default=1024 * 1024)

# --- Logging ----------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "filters": {
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "plain",
        },
        # To ADMINS (none: nothing sent), as Django's own default logging does, with
        # DEBUG off. Errors and Operations, above.
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false"],
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        # Server errors (500s), with the request, to ADMINS; to stdout through "django".
        "django.request": {"handlers": ["mail_admins"], "propagate": True},
        # A new billing alert (billing/alerts.py), once per alert.
        "billing.alerts": {"handlers": ["stdout", "mail_admins"], "propagate": False},
        # django-axes announces its version at INFO in every process that starts.
        "axes": {"handlers": ["stdout"], "level": "WARNING", "propagate": False},
    },
}
if STRIPE_SANDBOX:
    # stripe-python logs every request at INFO with its api.stripe.com URL, which reads
    # as if real Stripe were being called; the sandbox logs its own short line instead
    # (devtools/stripe_sandbox/client.py).
    LOGGING["loggers"]["stripe"] = {"handlers": ["stdout"], "level": "WARNING", "propagate": False}
