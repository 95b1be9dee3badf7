"""Every default the runner uses, named in one place and overridable from the environment.

Nothing else in `orchestration/` reads an environment variable of ours. Values that dbt needs too
(the lookback) are read from `dbt_project.yml`, so dbt and Python never disagree.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from functools import cache
from pathlib import Path

import yaml

from orchestration.core.errors import UserError

PROJECT_DIR = Path(__file__).resolve().parent.parent
PRICING_SEED = PROJECT_DIR / "seeds" / "model_pricing.csv"
PRICE_SNAPSHOTS_DIR = PROJECT_DIR / "pricing" / "snapshots"

LIBPQ_VARIABLES = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")

EMBEDDED_DATA_DIR = Path(os.environ.get("WATCHLLM_DATA_DIR", PROJECT_DIR / ".data"))
EMBEDDED_DATABASE = "watchllm"
EMBEDDED_USER = "postgres"

DBT_POOL = "watchllm_dbt"  # `make ui` limits this Dagster pool to 1: two dbt runs never overlap
DEFAULT_OWNER = "team:analytics"  # Dagster owner of a dbt asset without `meta.owner`
# What every production dbt run adds (cron, Dagster, rebuilds): unit tests are for development and CI
# (`make test`). They build their fixtures from the live source's columns, which any column type
# the proxy adds (an array, say) can break, and they check code, not data.
PRODUCTION_DBT_ARGS = ("--exclude-resource-type", "unit_test")
# The deep check: every test whose scheduled run reads only its window, over all of history.
DEEP_CHECK_DBT_ARGS = ("test", "--select", "tag:deep_check", "--vars", "{test_window: all}")


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _env_int(name: str, default: int) -> int:
    text = _env(name, str(default))
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{name} must be a whole number, got {text!r}") from None


def source_schema() -> str:
    """Where the proxy's usage_logs lives."""
    return _env("WATCHLLM_SOURCE_SCHEMA", "public")


def analytics_schema() -> str:
    """Where every output table and view is built."""
    return _env("WATCHLLM_ANALYTICS_SCHEMA", "analytics")


def api_schema() -> str:
    """Where get_dashboard_stats is created (the schema Supabase's RPC layer exposes)."""
    return _env("WATCHLLM_API_SCHEMA", "public")


def spark_dir() -> Path:
    """Where the local Spark keeps its warehouse and Derby metastore (relative paths: to the repo root)."""
    path = Path(_env("WATCHLLM_SPARK_DIR", ".data/spark"))
    return path if path.is_absolute() else PROJECT_DIR / path


def spark_master() -> str:
    """The master of the local Spark session the spark commands open."""
    return _env("WATCHLLM_SPARK_MASTER", "local[2]")


def spark_driver_memory() -> str:
    """The local Spark driver's memory (it does all the work)."""
    return _env("WATCHLLM_SPARK_DRIVER_MEMORY", "2g")


def spark_postgres_jdbc_url() -> str | None:
    """The Postgres a Spark cluster reads and writes over JDBC, as the cluster reaches it
    (jdbc:postgresql://host:port/database, no password). Unset: the runner's own PGHOST, PGPORT and
    PGDATABASE, when PGHOST is a TCP host."""
    return os.environ.get("WATCHLLM_SPARK_POSTGRES_URL") or None


def spark_postgres_user() -> str | None:
    """The Postgres role the cluster's JDBC connections log in as (unset: the runner's own)."""
    return os.environ.get("WATCHLLM_SPARK_POSTGRES_USER") or None


def spark_postgres_password() -> str | None:
    """That role's password (unset: the runner's own, PGPASSWORD). Pass it from a secret store."""
    return os.environ.get("WATCHLLM_SPARK_POSTGRES_PASSWORD") or None


def uses_external_database() -> bool:
    """True when any libpq variable is set: then that database is used, never the embedded one."""
    return any(os.environ.get(name) for name in LIBPQ_VARIABLES)


@cache
def dbt_vars() -> dict:
    """The `vars:` block of dbt_project.yml: the one source of the values dbt and Python share."""
    with open(PROJECT_DIR / "dbt_project.yml") as project:
        return yaml.safe_load(project)["vars"]


def lookback_hours() -> int:
    """Hours every scheduled build re-aggregates behind its newest hour (dbt var `lookback_hours`)."""
    return int(dbt_vars()["lookback_hours"])


def dbt_target() -> str | None:
    """The profiles.yml target Dagster runs dbt with (WATCHLLM_DBT_TARGET: unset = the Postgres
    default; `spark` = the Spark target, which also adds the spark_published_aggregates asset)."""
    return os.environ.get("WATCHLLM_DBT_TARGET") or None


def reconcile_days() -> int:
    """Closed days `reconcile` and the Dagster check compare with the raw rows."""
    return _env_int("WATCHLLM_RECONCILE_DAYS", 7)


def partitions_start() -> str:
    """First UTC day of the Dagster partitions (YYYY-MM-DD)."""
    text = _env("WATCHLLM_PARTITIONS_START", "2026-01-01")
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        raise UserError(f"WATCHLLM_PARTITIONS_START must be a date (YYYY-MM-DD), got {text!r}") from None
    return text


def hit_rate_drop_points() -> Decimal:
    """Points below its trailing 7-day hit rate at which a project's last day warns."""
    return Decimal(_env("WATCHLLM_HIT_RATE_DROP_POINTS", "10"))


def hit_rate_min_requests() -> int:
    """Requests a project needs on both sides of the hit-rate comparison to be judged."""
    return _env_int("WATCHLLM_HIT_RATE_MIN_REQUESTS", 100)


def retention_defaults() -> dict[str, str]:
    """The retention policy as text ('forever' or a number of days), as `retention` parses it."""
    return {
        "raw_days": _env("WATCHLLM_RETAIN_RAW_DAYS", "forever"),
        "hourly_days": _env("WATCHLLM_RETAIN_HOURLY_DAYS", "90"),
        "daily_days": _env("WATCHLLM_RETAIN_DAILY_DAYS", "365"),
    }


# --- alerts (docs/alerts-and-reports.md) -------------------------------------------------------

ALERT_RULES = (
    "cache_hit_rate_drop",
    "daily_cost_spike",
    "unpriced_model",
    "latency_p95_regression",
    "monthly_budget",
    "key_budget",
    "error_rate_spike",
)


def _env_decimal(name: str, default: str) -> Decimal:
    text = _env(name, default)
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise UserError(f"{name} must be a number, got {text!r}") from None
    if not value.is_finite() or value < 0:
        raise UserError(f"{name} must be a number of at least 0, got {text!r}")
    return value


def alerts_as_of() -> dt.datetime | None:
    """Judge the alert rules as if it were this UTC time instead of now (replays; tests)."""
    text = os.environ.get("WATCHLLM_ALERTS_AS_OF")
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"WATCHLLM_ALERTS_AS_OF must be an ISO time like 2026-11-10T06:00Z, got {text!r}") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def cost_spike_ratio() -> Decimal:
    """A day's cost at least this many times its trailing 7-day daily average is a spike..."""
    return _env_decimal("WATCHLLM_COST_SPIKE_RATIO", "3")


def error_rate_spike_ratio() -> Decimal:
    """A day's error rate at least this many times the 7 days before is a spike..."""
    return _env_decimal("WATCHLLM_ERROR_RATE_SPIKE_RATIO", "2")


def error_rate_spike_min_points() -> Decimal:
    """...and at least this many percentage points above it, so a handful of errors does not page anyone."""
    return _env_decimal("WATCHLLM_ERROR_RATE_SPIKE_MIN_POINTS", "5")


def cost_spike_min_usd() -> Decimal:
    """...and at least this many dollars above it, so tiny projects do not page anyone."""
    return _env_decimal("WATCHLLM_COST_SPIKE_MIN_USD", "10")


def latency_p95_ratio() -> Decimal:
    """A day's latency p95 at least this many times the p95 of the 7 days before is a regression..."""
    return _env_decimal("WATCHLLM_LATENCY_P95_RATIO", "1.5")


def latency_p95_min_increase_ms() -> Decimal:
    """...and at least this many milliseconds above it."""
    return _env_decimal("WATCHLLM_LATENCY_P95_MIN_INCREASE_MS", "100")


def budget_alert_percents() -> tuple[int, ...]:
    """Percentages of a project's monthly_budget_usd at which the budget alert fires."""
    text = _env("WATCHLLM_BUDGET_ALERT_PERCENTS", "80,100")
    try:
        percents = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise UserError(f"WATCHLLM_BUDGET_ALERT_PERCENTS must be whole percentages like 80,100, got {text!r}") from None
    if not percents or percents[0] <= 0:
        raise UserError(f"WATCHLLM_BUDGET_ALERT_PERCENTS must be positive percentages like 80,100, got {text!r}")
    return percents


def alert_cooldown() -> dt.timedelta:
    """How long after an alert resolves before the same alert may fire again."""
    return dt.timedelta(hours=float(_env_decimal("WATCHLLM_ALERT_COOLDOWN_HOURS", "24")))


def alert_retry_base() -> dt.timedelta:
    """Backoff of failed deliveries: the n-th failure waits base * 2^(n-1) (at most 6 hours) before the next try."""
    return dt.timedelta(minutes=float(_env_decimal("WATCHLLM_ALERT_RETRY_BASE_MINUTES", "5")))


def delivery_timeout_seconds() -> float:
    """Timeout of one webhook POST or SMTP session."""
    return float(_env_decimal("WATCHLLM_ALERT_TIMEOUT_SECONDS", "10")) or 10.0


def alert_webhook_url() -> str | None:
    """Incoming-webhook URL (Slack, Discord, any JSON endpoint) every alert is POSTed to."""
    return os.environ.get("WATCHLLM_ALERT_WEBHOOK_URL") or None


def smtp_url() -> str | None:
    """smtp://[user:password@]host[:port][?starttls=true] or smtps://... for alerts and reports; a
    password only over TLS unless the URL adds ?insecure=true."""
    from orchestration.core.delivery import check_smtp_url

    url = os.environ.get("WATCHLLM_SMTP_URL") or None
    if url:
        check_smtp_url(url)
    return url


def alert_email_to() -> tuple[str, ...]:
    """Operators who get every alert by email (comma-separated); a project's own alert_email_to adds to it."""
    from orchestration.core.delivery import parse_addresses

    return parse_addresses(_env("WATCHLLM_ALERT_EMAIL_TO", ""), "WATCHLLM_ALERT_EMAIL_TO")


def email_from() -> str:
    """Sender address of alert and report emails."""
    return _env("WATCHLLM_ALERT_EMAIL_FROM", "watchllm-analytics@localhost")


def reports_dir() -> Path:
    """Where reports are written when no --out is given (`make demo`, the Dagster asset)."""
    return Path(_env("WATCHLLM_REPORTS_DIR", str(EMBEDDED_DATA_DIR / "reports")))
