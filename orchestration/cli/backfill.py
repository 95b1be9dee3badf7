"""`backfill-potential-cost`: the original guide's Step 2, done safely.

Writes the pricing seed's list price into usage_logs.potential_cost_usd for cached rows whose
value is 0 or NULL, in batches that each commit on their own, walking the primary key so an
interrupted run resumes where it stopped. The price comes from the int_usage_logs_priced view,
so it follows exactly the pricing rule the models use; a recorded non-zero value is never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from psycopg import sql

from orchestration import settings
from orchestration.core.errors import UserError


@dataclass
class BackfillCounts:
    candidates: int = 0  # cached rows with potential_cost_usd 0 or NULL
    priceable: int = 0  # of those, rows the pricing seed prices above 0
    updated: int = 0
    batches: int = 0

    @property
    def unpriceable(self) -> int:
        return self.candidates - self.priceable


def _names() -> dict[str, sql.Composable]:
    return {
        "logs": sql.Identifier(settings.source_schema(), "usage_logs"),
        "priced": sql.Identifier(settings.analytics_schema(), "int_usage_logs_priced"),
    }


CANDIDATE = "logs.cached and (logs.potential_cost_usd is null or logs.potential_cost_usd = 0)"


def count(conn) -> BackfillCounts:
    _require_priced_view(conn)
    query = sql.SQL(
        "select count(*), count(*) filter (where priced.list_price_usd > 0) from {logs} as logs"
        " left join {priced} as priced on priced.request_id = logs.id"
        f" where {CANDIDATE}"
    ).format(**_names())
    candidates, priceable = conn.execute(query).fetchone()
    return BackfillCounts(candidates=candidates, priceable=priceable)


def backfill(conn, batch_size: int, progress: Callable[[str], None] | None = None) -> BackfillCounts:
    """Update in batches of `batch_size` candidate rows, one transaction each."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    counts = count(conn)
    update = sql.SQL(
        "with batch as ("
        f"  select logs.id from {{logs}} as logs where {CANDIDATE} and logs.id > %(after)s"
        "   order by logs.id limit %(size)s"
        "), updated as ("
        "  update {logs} as logs set potential_cost_usd = priced.list_price_usd"
        "  from batch join {priced} as priced on priced.request_id = batch.id"
        "  where logs.id = batch.id and priced.list_price_usd > 0"
        f"   and {CANDIDATE}"
        "  returning logs.id"
        ")"
        " select (select id from batch order by id desc limit 1), (select count(*) from updated)"
    ).format(**_names())
    after = "00000000-0000-0000-0000-000000000000"
    while True:
        with conn.transaction():
            last_id, updated = conn.execute(update, {"after": after, "size": batch_size}).fetchone()
        if last_id is None:
            break
        after = last_id
        counts.updated += updated
        counts.batches += 1
        if progress:
            progress(f"batch {counts.batches}: updated {updated} rows (total {counts.updated})")
    return counts


def _require_priced_view(conn) -> None:
    name = f'"{settings.analytics_schema()}".int_usage_logs_priced'
    if conn.execute("select to_regclass(%s) is null", (name,)).fetchone()[0]:
        raise UserError(f"{name} does not exist: run `watchllm-analytics dbt build` once first (it prices rows)")
