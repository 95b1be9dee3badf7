"""The overview `make demo` prints: totals, quality counts and the busiest project's dashboard."""

from __future__ import annotations

from psycopg import sql

from orchestration import settings
from orchestration.cli import stats
from orchestration.core.formatting import money


def print_summary(cur, days: int = 30):
    """Prints the overview; returns the busiest project's id (None without traffic)."""
    names = {
        "daily": sql.Identifier(settings.analytics_schema(), "usage_aggregations_daily"),
        "rejected": sql.Identifier(settings.analytics_schema(), "usage_logs_rejected"),
        "logs": sql.Identifier(settings.source_schema(), "usage_logs"),
    }
    totals = cur.execute(
        sql.SQL(
            "select count(distinct project_id), coalesce(sum(total_requests), 0), coalesce(sum(cached_requests), 0),"
            " sum(total_cost_usd), sum(total_potential_cost_usd), sum(total_savings_usd),"
            " coalesce(sum(unpriced_requests), 0), min(date), max(date), sum(prompt_cache_savings_usd) from {daily}"
        ).format(**names)
    ).fetchone()
    projects, requests, cached, cost, potential, savings, unpriced, first, last, prompt_cache_savings = totals
    raw = cur.execute(sql.SQL("select count(*) from {logs}").format(**names)).fetchone()[0]
    rejected = cur.execute(sql.SQL("select count(*) from {rejected}").format(**names)).fetchone()[0]
    hit = f"{100 * cached / requests:.2f}%" if requests else "-"
    pct = f"{100 * savings / potential:.1f}%" if potential else "-"
    print("watchllm-analytics: all projects")
    print(f"  usage_logs rows     {raw:,} ({rejected:,} quarantined in usage_logs_rejected)")
    print(f"  aggregated          {requests:,} requests from {projects:,} projects, {first} .. {last} (UTC)")
    print(f"  cache hit rate      {hit}")
    print(f"  cost                {money(cost)}")
    print(f"  saved by the cache  {money(savings)} ({pct} of the {money(potential)} it would have cost)")
    print(f"  provider prompt caching saved {money(prompt_cache_savings)}")
    print(f"  unpriced requests   {unpriced:,} (no price in seeds/model_pricing.csv)")
    busiest = cur.execute(
        sql.SQL("select project_id from {daily} group by project_id order by sum(total_requests) desc limit 1").format(
            **names
        )
    ).fetchone()
    if busiest:
        rows = stats.dashboard_stats(cur, busiest[0], days)
        print(f"\nbusiest project {busiest[0]}, last {days} days, from get_dashboard_stats:")
        print(stats.format_dashboard(rows[-7:]).replace(stats.summarise(rows[-7:]), stats.summarise(rows)))
        print("(last 7 days shown; totals cover all the days)")
    return busiest[0] if busiest else None
