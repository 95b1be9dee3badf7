"""Read the dashboard function and the marts, and print them for a person."""

from __future__ import annotations

import uuid
from collections import Counter
from decimal import Decimal

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


def parse_project_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise UserError(f"project id {text!r} is not a UUID: pass the project's uuid") from None


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


def forecast_line(cur, project_id: uuid.UUID) -> str:
    """The project's row of project_cost_forecast, as one line a person reads."""
    row = cur.execute(
        sql.SQL(
            "select month, as_of_date, month_to_date_cost_usd, forecast_cost_usd, forecast_low_usd,"
            " forecast_high_usd, forecast_savings_usd, method from {} where project_id = %s"
        ).format(sql.Identifier(settings.analytics_schema(), "project_cost_forecast")),
        (project_id,),
    ).fetchone()
    if row is None:
        return "forecast: none (no traffic this month or last; or run `watchllm-analytics dbt build` first)"
    month, as_of, mtd, forecast, low, high, savings, method = row
    return (
        f"forecast for {month:%Y-%m}: {money(forecast)} (80% interval {money(low)} .. {money(high)}), "
        f"{money(mtd)} so far up to {as_of}; savings {money(savings)}; method {method}"
    )


def _project_exists(cur, project_id: uuid.UUID) -> bool:
    query = sql.SQL(
        "select exists (select 1 from {daily} where project_id = %(p)s)"
        " or exists (select 1 from {logs} where project_id = %(p)s)"
    ).format(
        daily=sql.Identifier(settings.analytics_schema(), "usage_aggregations_daily"),
        logs=sql.Identifier(settings.source_schema(), "usage_logs"),
    )
    return cur.execute(query, {"p": project_id}).fetchone()[0]


def money(value: Decimal | None) -> str:
    return "unknown" if value is None else f"${value:,.2f}"


def format_dashboard(rows: list[dict]) -> str:
    header = f"{'date':<10}  {'requests':>9}  {'cached':>8}  {'hit %':>6}  {'tokens':>12}  {'cost':>11}  "
    header += f"{'potential':>11}  {'savings':>11}  {'latency ms':>10}  {'p50 ms':>9}  {'p95 ms':>9}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['date']!s:<10}  {r['total_requests']:>9,}  {r['cached_requests']:>8,}  "
            f"{_opt(r['cache_hit_rate']):>6}  {r['total_tokens']:>12,}  {money(r['total_cost_usd']):>11}  "
            f"{money(r['total_potential_cost_usd']):>11}  {money(r['total_savings_usd']):>11}  "
            f"{_opt(r['avg_latency_ms']):>10}  {_opt(r['latency_p50_ms']):>9}  {_opt(r['latency_p95_ms']):>9}"
        )
    lines.append("-" * len(header))
    lines.append(summarise(rows))
    return "\n".join(lines)


def _opt(value) -> str:
    return "-" if value is None else str(value)


def summarise(rows: list[dict]) -> str:
    """Totals over the rows, computed from sums and counts (never an average of averages)."""
    requests = sum(r["total_requests"] for r in rows)
    cached = sum(r["cached_requests"] for r in rows)
    cost = sum((r["total_cost_usd"] or 0 for r in rows), Decimal(0))
    potential = sum((r["total_potential_cost_usd"] or 0 for r in rows), Decimal(0))
    savings = sum((r["total_savings_usd"] or 0 for r in rows), Decimal(0))
    hit = f"{Decimal(100 * cached) / requests:.2f}%" if requests else "-"
    pct = f" ({Decimal(100) * savings / potential:.1f}% of potential)" if potential else ""
    models = Counter()
    for r in rows:
        models.update(r["requests_by_model"] or {})
    top = ", ".join(f"{m} {n:,}" for m, n in models.most_common(5)) or "-"
    return (
        f"{len(rows)} days: {requests:,} requests, hit rate {hit}, cost {money(cost)}, "
        f"saved {money(savings)}{pct}\ntop models: {top}"
    )
