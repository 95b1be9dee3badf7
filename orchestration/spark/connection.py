"""The Spark that `dbt build --target spark` uses, for `spark export-logs` and `spark publish`.

The profile is profiles.yml's `spark` target, rendered with the same environment variables, and
the connection is opened by dbt-spark's own connection manager: a Thrift server (`thrift`),
Databricks (`http` or `odbc`) or, by default, a local session in this process (`session`).

With `session` the Spark driver is this process, so rows move through it in bounded Arrow slices.
With any other method Spark is elsewhere: rows move between the cluster and Postgres through
Spark SQL's JDBC data source, so they never pass through this process (docs/scaling-out.md,
"Running against a cluster").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from decimal import Decimal

import jinja2
import yaml

from orchestration import settings
from orchestration.core.errors import UserError

# Spark settings every statement of these commands relies on, set on the connection: a server's
# defaults may differ from the profile's server_side_parameters (a Thrift server applies those to
# dbt's sessions only when it allows it).
SESSION_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.decimalOperations.allowPrecisionLoss": "false",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
}


def spark_profile() -> dict:
    """profiles.yml's `spark` output with env_var() rendered as dbt renders it."""

    def env_var(name: str, default: str | None = None) -> str:
        value = os.environ.get(name, default)
        if value is None:
            raise UserError(f"profiles.yml's spark target needs the environment variable {name}")
        return value

    text = (settings.PROJECT_DIR / "profiles.yml").read_text()
    rendered = jinja2.Environment().from_string(text).render(env_var=env_var)
    outputs = yaml.safe_load(rendered)["watchllm_analytics"]["outputs"]
    return dict(outputs["spark"])


def literal(text: str) -> str:
    """A Spark SQL string literal (backslash escapes, as Spark parses them)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class SparkSQL:
    """Statements on one Spark connection; `session` is the local SparkSession when there is one."""

    def __init__(self, execute, session=None):
        self._execute = execute
        self.session = session

    @property
    def is_local(self) -> bool:
        return self.session is not None

    def sql(self, statement: str) -> list[tuple]:
        return self._execute(statement)


def _remote(profile: dict) -> Iterator[SparkSQL]:
    try:
        from dbt.adapters.contracts.connection import Connection
        from dbt.adapters.spark.connections import SparkConnectionManager, SparkCredentials
    except ImportError:
        raise UserError("dbt-spark is not installed: run `make setup-spark`") from None
    fields = {k: v for k, v in profile.items() if k not in ("type", "threads")}
    try:
        credentials = SparkCredentials.from_dict(fields)
        connection = SparkConnectionManager.open(
            Connection(type="spark", name="watchllm-analytics", credentials=credentials)
        )
    except Exception as exc:  # dbt raises its own runtime errors, PyHive/thrift their transport errors
        where = f"{profile.get('host')}:{profile.get('port')}"
        raise UserError(
            f"could not connect to Spark ({profile.get('method')} at {where}): {exc}".splitlines()[0]
        ) from exc
    handle = connection.handle

    def execute(statement: str) -> list[tuple]:
        cursor = handle.cursor()
        cursor.execute(statement)
        try:
            return [tuple(row) for row in cursor.fetchall() or []]
        except Exception:  # a statement without a result set (DDL, insert): PyHive has nothing to fetch
            return []

    try:
        yield SparkSQL(execute)
    finally:
        handle.close()


@contextlib.contextmanager
def connect() -> Iterator[SparkSQL]:
    """The Spark of profiles.yml's spark target (WATCHLLM_SPARK_METHOD), with SESSION_SETTINGS set."""
    profile = spark_profile()
    method = profile.get("method")
    if method == "session":
        from orchestration.spark.session import session

        with session() as spark:
            yield SparkSQL(lambda statement: [tuple(row) for row in spark.sql(statement).collect()], spark)
        return
    with contextlib.contextmanager(_remote)(profile) as spark:
        for name, value in SESSION_SETTINGS.items():
            spark.sql(f"set {name}={value}")
        yield spark


def as_decimal(value) -> Decimal | None:
    """A decimal from Spark: local sessions return Decimal, Thrift servers its text."""
    return None if value is None else Decimal(str(value))


def as_date(value) -> dt.date | None:
    """A date from Spark: local sessions return date, Thrift servers its text."""
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])
