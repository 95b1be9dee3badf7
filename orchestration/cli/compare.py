"""`watchllm-analytics compare`: what a project's month would have cost on every candidate model."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal

from psycopg import sql

from orchestration import settings
from orchestration.cli.stats import money
from orchestration.core.errors import UserError


def parse_month(text: str) -> dt.date:
    if not re.fullmatch(r"\d{4}-\d{2}", text or ""):
        raise UserError(f"--month must be YYYY-MM (a UTC month), got {text!r}")
    try:
        return dt.date(int(text[:4]), int(text[5:]), 1)
    except ValueError:
        raise UserError(f"--month must be YYYY-MM (a UTC month), got {text!r}") from None


def candidates(cur, project_id: uuid.UUID, month: dt.date | None) -> tuple[dt.date, list[dict]]:
    """The project's rows of model_cost_counterfactual_monthly for `month` (default: its latest month)."""
    table = sql.Identifier(settings.analytics_schema(), "model_cost_counterfactual_monthly")
    if cur.execute(
        "select to_regclass(%s) is null", (f'"{settings.analytics_schema()}".model_cost_counterfactual_monthly',)
    ).fetchone()[0]:
        raise UserError(
            "model_cost_counterfactual_monthly does not exist yet: run `watchllm-analytics dbt build` first"
        )
    if month is None:
        month = cur.execute(
            sql.SQL("select max(month) from {} where project_id = %s").format(table), (project_id,)
        ).fetchone()[0]
        if month is None:
            raise UserError(f"project {project_id} has no month in model_cost_counterfactual_monthly: check the id")
    cur.execute(
        sql.SQL(
            "select provider, model, total_requests, priced_requests, actual_cost_usd, counterfactual_cost_usd,"
            " counterfactual_potential_cost_usd, difference_usd from {} where project_id = %s and month = %s"
            " order by counterfactual_cost_usd asc nulls last, provider, model"
        ).format(table),
        (project_id, month),
    )
    names = [c.name for c in cur.description]
    rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    if not rows:
        raise UserError(f"project {project_id} has no traffic in {month:%Y-%m} (UTC): try another --month")
    return month, rows


def format_comparison(project_id: uuid.UUID, month: dt.date, rows: list[dict]) -> str:
    total = rows[0]["total_requests"]
    lines = [
        f"project {project_id}, {month:%Y-%m} (UTC): {total:,} requests; what they would have cost on each model",
        "(cheapest first; a cache hit costs nothing on any model; 'actual' covers the requests the model prices)",
        f"  {'model':<44} {'cost on it':>12} {'actual':>12} {'difference':>12} {'%':>8}  not priced",
    ]
    for r in rows:
        unpriced = total - r["priced_requests"]
        name = f"{r['provider']}/{r['model']}"
        if r["priced_requests"] == 0:
            lines.append(f"  {name:<44} {'-':>12} {'-':>12} {'-':>12} {'-':>8}  {unpriced:,} (no price that month)")
            continue
        difference = r["difference_usd"]
        actual = r["actual_cost_usd"]
        pct = f"{Decimal(100) * difference / actual:+.1f}%" if difference is not None and actual else "-"
        signed = "-" if difference is None else ("-" if difference < 0 else "+") + money(abs(difference))
        lines.append(
            f"  {name:<44} {money(r['counterfactual_cost_usd']):>12} {money(actual):>12} {signed:>12} {pct:>8}"
            f"  {unpriced:,}{' not priced' if unpriced else ''}"
        )
    return "\n".join(lines)
