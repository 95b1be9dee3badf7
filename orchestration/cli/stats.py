"""Read the dashboard function and the marts, and print them for a person."""

from __future__ import annotations

import uuid
from collections import Counter
from decimal import Decimal

from psycopg import sql

from orchestration import settings
from orchestration.core import labels
from orchestration.core.dashboard import check_days, dashboard_stats
from orchestration.core.errors import UserError
from orchestration.core.formatting import money, optional

__all__ = ["check_days", "dashboard_stats", "format_dashboard", "forecast_line", "parse_project_id", "summarise"]


def parse_project_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise UserError(f"project id {text!r} is not a UUID: pass the project's uuid") from None


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


def format_dashboard(rows: list[dict]) -> str:
    header = f"{'date':<10}  {'requests':>9}  {'cached':>8}  {'hit %':>6}  {'tokens':>12}  {'cost':>11}  "
    header += f"{'potential':>11}  {'savings':>11}  {'latency ms':>10}  {'p50 ms':>9}  {'p95 ms':>9}  "
    header += f"{'errors':>7}  {'err %':>6}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['date']!s:<10}  {r['total_requests']:>9,}  {r['cached_requests']:>8,}  "
            f"{optional(r['cache_hit_rate']):>6}  {r['total_tokens']:>12,}  {money(r['total_cost_usd']):>11}  "
            f"{money(r['total_potential_cost_usd']):>11}  {money(r['total_savings_usd']):>11}  "
            f"{optional(r['avg_latency_ms']):>10}  {optional(r['latency_p50_ms']):>9}  "
            f"{optional(r['latency_p95_ms']):>9}  {r['error_requests']:>7,}  {optional(r['error_rate']):>6}"
        )
    lines.append("-" * len(header))
    lines.append(summarise(rows))
    return "\n".join(lines)


def summarise(rows: list[dict]) -> str:
    """Totals over the rows, computed from sums and counts (never an average of averages)."""
    requests = sum(r["total_requests"] for r in rows)
    cached = sum(r["cached_requests"] for r in rows)
    cost = sum((r["total_cost_usd"] or 0 for r in rows), Decimal(0))
    potential = sum((r["total_potential_cost_usd"] or 0 for r in rows), Decimal(0))
    savings = sum((r["total_savings_usd"] or 0 for r in rows), Decimal(0))
    prompt_cache_savings = sum((r["prompt_cache_savings_usd"] or 0 for r in rows), Decimal(0))
    hit = f"{Decimal(100 * cached) / requests:.2f}%" if requests else "-"
    errors = sum(r["error_requests"] for r in rows)
    error_rate = f"{Decimal(100 * errors) / requests:.2f}%" if requests else "-"
    pct = f" ({Decimal(100) * savings / potential:.1f}% of potential)" if potential else ""
    models = Counter()
    for r in rows:
        models.update(r["requests_by_model"] or {})
    top = ", ".join(f"{labels.visible(m)} {n:,}" for m, n in models.most_common(5)) or "-"
    return (
        f"{len(rows)} days: {requests:,} requests, hit rate {hit}, cost {money(cost)}, "
        f"saved {money(savings)}{pct}; provider prompt caching saved {money(prompt_cache_savings)}; "
        f"errors {errors:,} ({error_rate})\n"
        f"top models: {top}"
    )
