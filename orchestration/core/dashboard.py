"""The dashboard function as the runner reads it: get_dashboard_stats rows as dicts, with one-line
errors for what a caller got wrong. The CLI's `stats`, the summary and the reports read it here."""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql

from orchestration import settings
from orchestration.core.errors import UserError

DASHBOARD_COLUMNS = (
    "date",
    "total_requests",
    "cached_requests",
    "cache_hit_rate",
    "total_tokens",
    "total_cost_usd",
    "total_potential_cost_usd",
    "total_savings_usd",
    "avg_latency_ms",
    "requests_by_provider",
    "requests_by_model",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
)


def check_days(days: int) -> None:
    if not 1 <= days <= 366:
        raise UserError(f"--days must be between 1 and 366, got {days}")


def dashboard_stats(cur, project_id: uuid.UUID, days: int, time_zone: str = "UTC") -> list[dict]:
    """get_dashboard_stats(project, days, time_zone) as dicts; a bad zone is a UserError with its reason."""
    check_days(days)
    function = sql.Identifier(settings.api_schema(), "get_dashboard_stats")
    if cur.execute(
        "select to_regprocedure(%s) is null", (f'"{settings.api_schema()}".get_dashboard_stats(uuid, integer, text)',)
    ).fetchone()[0]:
        raise UserError("get_dashboard_stats does not exist yet: run `watchllm-analytics dbt build` first")
    if not _project_exists(cur, project_id):
        raise UserError(f"unknown project {project_id}: it has no usage in the aggregates or in usage_logs")
    try:
        cur.execute(sql.SQL("select * from {}(%s, %s, %s)").format(function), (project_id, days, time_zone))
    except psycopg.errors.InvalidParameterValue as error:
        message = error.diag.message_primary or str(error)
        raise UserError(message.replace("get_dashboard_stats: p_time_zone", "--time-zone")) from None
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _project_exists(cur, project_id: uuid.UUID) -> bool:
    query = sql.SQL(
        "select exists (select 1 from {daily} where project_id = %(p)s)"
        " or exists (select 1 from {logs} where project_id = %(p)s)"
    ).format(
        daily=sql.Identifier(settings.analytics_schema(), "usage_aggregations_daily"),
        logs=sql.Identifier(settings.source_schema(), "usage_logs"),
    )
    return cur.execute(query, {"p": project_id}).fetchone()[0]
