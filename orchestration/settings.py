"""Every default the runner uses, named in one place and overridable from the environment."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
PRICING_SEED = PROJECT_DIR / "seeds" / "model_pricing.csv"

LIBPQ_VARIABLES = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")

EMBEDDED_DATA_DIR = Path(os.environ.get("WATCHLLM_DATA_DIR", PROJECT_DIR / ".data"))
EMBEDDED_DATABASE = "watchllm"
EMBEDDED_USER = "postgres"


def source_schema() -> str:
    return os.environ.get("WATCHLLM_SOURCE_SCHEMA", "public")


def analytics_schema() -> str:
    return os.environ.get("WATCHLLM_ANALYTICS_SCHEMA", "analytics")


def api_schema() -> str:
    return os.environ.get("WATCHLLM_API_SCHEMA", "public")


def uses_external_database() -> bool:
    """True when any libpq variable is set: then that database is used, never the embedded one."""
    return any(os.environ.get(name) for name in LIBPQ_VARIABLES)
