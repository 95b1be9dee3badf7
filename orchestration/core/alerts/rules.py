"""The alert rules: which conditions hold now, judged from the daily marts only (never usage_logs).

The day rules judge the last complete UTC day against the 7 days before it, the budget rule the
current UTC month. Each is a few index ranges of the marts, so a check costs the same whatever the
length of history. Every project is judged on its own: a project whose figures make a rule fail
(a bug, or data no rule foresaw) is listed in `Evaluation.failures` and the other projects are
still judged.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from psycopg import sql

from orchestration import settings
from orchestration.core import labels
from orchestration.core.errors import UserError
from orchestration.core.formatting import money


@dataclass(frozen=True)
class Condition:
    """A rule that holds for a project now: what `check` fires when it has no open firing."""

    project_id: uuid.UUID
    rule: str
    subject: str
    window_start: dt.datetime
    window_end: dt.datetime
    observed: Decimal
    threshold: Decimal
    message: str
    details: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[uuid.UUID, str, str]:
        return (self.project_id, self.rule, self.subject)


@dataclass
class Evaluation:
    """What the rules found: the conditions that hold, and per rule the projects that were judged
    (an open firing of a judged project whose condition is gone resolves; one not judged stays open).
    `failures` are the (project, rule, error) that could not be judged."""

    as_of: dt.datetime
    judged_day: dt.date
    conditions: list[Condition] = field(default_factory=list)
    judged: dict[str, set[uuid.UUID]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failures: list[tuple[uuid.UUID, str, str]] = field(default_factory=list)

    def judge(self, project: uuid.UUID, rule: str, judging: Callable[[], None]) -> None:
        """Run one project's rule; an exception is recorded for that project and the others go on."""
        try:
            judging()
        except Exception as exc:  # noqa: BLE001 (a project's failure is its own)
            self.failures.append((project, rule, f"{type(exc).__name__}: {exc}"))
            self.judged.get(rule, set()).discard(project)  # its open alert stays as it is


def _names() -> dict[str, sql.Composable]:
    schema = settings.analytics_schema()
    return {
        "daily": sql.Identifier(schema, "usage_aggregations_daily"),
        "by_model": sql.Identifier(schema, "usage_by_model_daily"),
        "forecast": sql.Identifier(schema, "project_cost_forecast"),
        "settings": sql.Identifier(schema, "project_settings"),
        "percentiles": sql.Identifier(schema, "merged_latency_percentiles"),
        "by_dimension": sql.Identifier(schema, "usage_by_dimension_daily"),
        "key_budgets": sql.Identifier(schema, "key_budgets"),
    }


def _has_relation(cur, table: str) -> bool:
    schema = settings.analytics_schema().replace('"', '""')
    return cur.execute("select to_regclass(%s) is not null", (f'"{schema}"."{table}"',)).fetchone()[0]


def _require_marts(cur) -> None:
    if not (_has_relation(cur, "usage_aggregations_daily") and _has_relation(cur, "usage_by_model_daily")):
        raise UserError("the aggregates are not built yet: run `watchllm-analytics dbt build` first")


def _settings_columns(cur) -> set[str]:
    rows = cur.execute(
        "select column_name from information_schema.columns"
        " where table_schema = %s and table_name = 'project_settings'",
        (settings.analytics_schema(),),
    )
    return {name for (name,) in rows}


OVERRIDE_COLUMNS = (
    "hit_rate_drop_points",
    "cost_spike_ratio",
    "cost_spike_min_usd",
    "latency_p95_ratio",
    "error_rate_spike_ratio",
    "error_rate_spike_min_points",
)

DAILY_RULES_SQL = """
with judged_days as (
    select
        daily.project_id,
        sum(total_requests) filter (where date = %(day)s) as day_requests,
        sum(cached_requests) filter (where date = %(day)s) as day_cached,
        coalesce(sum(total_cost_usd) filter (where date = %(day)s), 0) as day_cost,
        sum(total_requests) filter (where date < %(day)s) as base_requests,
        sum(cached_requests) filter (where date < %(day)s) as base_cached,
        coalesce(sum(total_cost_usd) filter (where date < %(day)s), 0) as base_cost,
        coalesce(sum(error_requests) filter (where date = %(day)s), 0) as day_errors,
        coalesce(sum(error_requests) filter (where date < %(day)s), 0) as base_errors,
        max(latency_p95_ms) filter (where date = %(day)s) as day_p95,
        min(latency_p95_ms) filter (where date < %(day)s) as base_min_p95
    from {daily} as daily
    where date between %(day)s::date - 7 and %(day)s
    group by daily.project_id
)
select
    judged_days.*,
    {overrides}
from judged_days
{settings_join}
where judged_days.day_requests > 0
order by judged_days.project_id
"""

# the merged sketch of the 7 days before the judged day, by the models' own merge (a dbt function)
BASELINE_P95_SQL = """
select sketched.project_id, merged.latency_p95_ms
from (
    select project_id, array_agg(latency_sketch) as sketches
    from {daily}
    where date between %(day)s::date - 7 and %(day)s::date - 1
      and project_id = any(%(projects)s)
      and latency_sketch is not null
    group by project_id
) as sketched
cross join lateral {percentiles}(sketched.sketches) as merged
"""

UNPRICED_SQL = """
select project_id, provider, model, sum(unpriced_requests) as unpriced, min(date) as first_day, max(date) as last_day
from {by_model}
where date between %(day)s and %(today)s and unpriced_requests > 0
group by project_id, provider, model
order by project_id, provider, model
"""

# a key's month to date from its api_key rows (an index range per budget)
KEY_BUDGET_SQL = """
select
    budgets.project_id,
    budgets.api_key_id,
    budgets.monthly_budget_usd,
    (select coalesce(sum(keyed.total_cost_usd), 0) from {by_dimension} as keyed
     where keyed.project_id = budgets.project_id and keyed.dimension = 'api_key'
       and keyed.value = budgets.api_key_id and keyed.date between %(month)s and %(today)s) as month_to_date
from {key_budgets} as budgets
order by budgets.project_id, budgets.api_key_id
"""

BUDGET_SQL = """
select
    budgets.project_id,
    budgets.monthly_budget_usd,
    (select coalesce(sum(daily.total_cost_usd), 0) from {daily} as daily
     where daily.project_id = budgets.project_id and daily.date between %(month)s and %(today)s) as month_to_date,
    {forecast} as forecast
from {settings} as budgets
where budgets.monthly_budget_usd is not null
order by budgets.project_id
"""


def evaluate(cur, as_of: dt.datetime | None = None) -> Evaluation:
    """Every rule's conditions as of `as_of` (default now), read from the built aggregates only."""
    _require_marts(cur)
    names = _names()
    as_of = (as_of or settings.alerts_as_of() or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    today = as_of.date()
    day = today - dt.timedelta(days=1)  # the last complete UTC day
    result = Evaluation(as_of=as_of, judged_day=day, judged={rule: set() for rule in settings.ALERT_RULES})
    columns = _settings_columns(cur)
    if not {"monthly_budget_usd", *OVERRIDE_COLUMNS} <= columns:
        result.notes.append(
            "project_settings is missing or older than this version (run dbt build): no budgets or overrides"
        )

    built = cur.execute(sql.SQL("select exists (select 1 from {daily} where date = %s)").format(**names), (day,))
    if built.fetchone()[0]:
        _daily_rules(cur, names, day, result, columns)
    else:
        result.notes.append(f"no aggregates for {day} yet: the day rules wait for the build")
    _unpriced_rule(cur, names, day, today, result)
    if "monthly_budget_usd" in columns:
        _budget_rule(cur, names, today, result)
    if _has_relation(cur, "key_budgets") and _has_relation(cur, "usage_by_dimension_daily"):
        _key_budget_rule(cur, names, today, result)
    return result


def _day_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return start, start + dt.timedelta(days=1)


def _daily_rules(cur, names, day: dt.date, result: Evaluation, columns: set[str]) -> None:
    defaults = {
        "hit_rate_drop_points": settings.hit_rate_drop_points(),
        "cost_spike_ratio": settings.cost_spike_ratio(),
        "cost_spike_min_usd": settings.cost_spike_min_usd(),
        "latency_p95_ratio": settings.latency_p95_ratio(),
        "error_rate_spike_ratio": settings.error_rate_spike_ratio(),
        "error_rate_spike_min_points": settings.error_rate_spike_min_points(),
    }
    # a project's own threshold where project_settings has the column, the WATCHLLM_* default otherwise
    overrides = sql.SQL(",\n    ").join(
        sql.SQL("coalesce(overrides.{column}, {default}) as {column}").format(
            column=sql.Identifier(column), default=sql.Literal(default)
        )
        if column in columns
        else sql.SQL("{default} as {column}").format(column=sql.Identifier(column), default=sql.Literal(default))
        for column, default in defaults.items()
    )
    settings_join = (
        sql.SQL("left join {settings} as overrides on overrides.project_id = judged_days.project_id").format(**names)
        if columns
        else sql.SQL("")
    )
    query = sql.SQL(DAILY_RULES_SQL).format(daily=names["daily"], overrides=overrides, settings_join=settings_join)
    rows = cur.execute(query, {"day": day}).fetchall()
    rows = [dict(zip([c.name for c in cur.description], row, strict=True)) for row in rows]
    min_requests = settings.hit_rate_min_requests()
    start, end = _day_window(day)
    for row in rows:
        project = row["project_id"]
        result.judge(
            project, "cache_hit_rate_drop", lambda r=row: _hit_rate_rule(r, day, start, end, min_requests, result)
        )
        result.judge(project, "daily_cost_spike", lambda r=row: _cost_spike_rule(r, day, start, end, result))
        result.judge(
            project, "error_rate_spike", lambda r=row: _error_rate_rule(r, day, start, end, min_requests, result)
        )
    _latency_rule(cur, names, rows, day, start, end, min_requests, result)


def _hit_rate_rule(row, day, start, end, min_requests, result: Evaluation) -> None:
    if row["day_requests"] < min_requests or (row["base_requests"] or 0) < min_requests:
        return
    result.judged["cache_hit_rate_drop"].add(row["project_id"])
    points = row["hit_rate_drop_points"]
    day_rate = Decimal(100) * row["day_cached"] / row["day_requests"]
    base_rate = Decimal(100) * row["base_cached"] / row["base_requests"]
    if base_rate - day_rate <= points:
        return
    result.conditions.append(
        Condition(
            project_id=row["project_id"],
            rule="cache_hit_rate_drop",
            subject="",
            window_start=start,
            window_end=end,
            observed=round(day_rate, 2),
            threshold=round(base_rate - points, 2),
            message=(
                f"project {row['project_id']}: cache hit rate fell to {day_rate:.2f}% on {day} (UTC), "
                f"from {base_rate:.2f}% over the 7 days before (alert at a drop of more than {points} points)"
            ),
            details={"baseline_hit_rate_pct": str(round(base_rate, 2)), "requests": int(row["day_requests"])},
        )
    )


def _cost_spike_rule(row, day, start, end, result: Evaluation) -> None:
    if not row["base_requests"]:
        return  # a project's first day is not a spike
    result.judged["daily_cost_spike"].add(row["project_id"])
    ratio_setting, min_usd = row["cost_spike_ratio"], row["cost_spike_min_usd"]
    baseline = row["base_cost"] / 7  # the trailing 7 days' daily average, days without traffic as 0
    threshold = max(baseline * ratio_setting, baseline + min_usd)
    if row["day_cost"] < threshold or row["day_cost"] <= 0:
        return
    ratio = f"{row['day_cost'] / baseline:.1f}x" if baseline > 0 else "far above"
    result.conditions.append(
        Condition(
            project_id=row["project_id"],
            rule="daily_cost_spike",
            subject="",
            window_start=start,
            window_end=end,
            observed=row["day_cost"],
            threshold=threshold,
            message=(
                f"project {row['project_id']}: spent {money(row['day_cost'])} on {day} (UTC), {ratio} its trailing "
                f"7-day daily average of {money(baseline)} (alert at {ratio_setting}x and "
                f"{money(min_usd)} above it)"
            ),
            details={"baseline_daily_cost_usd": str(baseline)},
        )
    )


def _error_rate_rule(row, day, start, end, min_requests, result: Evaluation) -> None:
    if row["day_requests"] < min_requests or (row["base_requests"] or 0) < min_requests:
        return
    result.judged["error_rate_spike"].add(row["project_id"])
    ratio_setting, min_points = row["error_rate_spike_ratio"], row["error_rate_spike_min_points"]
    day_rate = Decimal(100) * row["day_errors"] / row["day_requests"]
    base_rate = Decimal(100) * row["base_errors"] / row["base_requests"]
    threshold = max(base_rate * ratio_setting, base_rate + min_points)
    if day_rate < threshold or row["day_errors"] == 0:
        return
    result.conditions.append(
        Condition(
            project_id=row["project_id"],
            rule="error_rate_spike",
            subject="",
            window_start=start,
            window_end=end,
            observed=round(day_rate, 2),
            threshold=round(threshold, 2),
            message=(
                f"project {row['project_id']}: {day_rate:.2f}% of requests failed on {day} (UTC), against "
                f"{base_rate:.2f}% over the 7 days before (alert at {ratio_setting}x and {min_points} points above it)"
            ),
            details={"baseline_error_rate_pct": str(round(base_rate, 2)), "errors": int(row["day_errors"])},
        )
    )


def _latency_rule(cur, names, rows, day, start, end, min_requests, result: Evaluation) -> None:
    min_increase = settings.latency_p95_min_increase_ms()
    judged = [
        r
        for r in rows
        if r["day_p95"] is not None
        and r["base_min_p95"] is not None
        and r["day_requests"] >= min_requests
        and r["base_requests"] >= min_requests
    ]
    # The merged p95 of the 7 days is at least the smallest of their p95s (a mixture's quantile lies
    # between its parts'), so a day below that bound's threshold cannot fire: only the rest are merged.
    candidates = [
        r
        for r in judged
        if r["day_p95"] >= max(r["base_min_p95"] * r["latency_p95_ratio"], r["base_min_p95"] + min_increase)
    ]
    result.judged["latency_p95_regression"].update(r["project_id"] for r in judged)
    if not candidates:
        return
    query = sql.SQL(BASELINE_P95_SQL).format(**names)
    baselines = dict(cur.execute(query, {"day": day, "projects": [r["project_id"] for r in candidates]}).fetchall())
    for row in candidates:
        result.judge(
            row["project_id"],
            "latency_p95_regression",
            lambda r=row: _latency_condition(r, baselines.get(r["project_id"]), min_increase, day, start, end, result),
        )


def _latency_condition(row, baseline, min_increase, day, start, end, result: Evaluation) -> None:
    if baseline is None:
        return
    threshold = max(baseline * row["latency_p95_ratio"], baseline + min_increase)
    if row["day_p95"] < threshold:
        return
    # a baseline of 0 ms (every known latency 0) has no ratio: say how far above it the day is
    versus = f"{row['day_p95'] / baseline:.1f}x the" if baseline > 0 else f"{row['day_p95']:,.0f} ms above the"
    result.conditions.append(
        Condition(
            project_id=row["project_id"],
            rule="latency_p95_regression",
            subject="",
            window_start=start,
            window_end=end,
            observed=row["day_p95"],
            threshold=threshold,
            message=(
                f"project {row['project_id']}: latency p95 was {row['day_p95']:,.0f} ms on {day} (UTC), "
                f"{versus} {baseline:,.0f} ms of the 7 days before "
                f"(alert at {row['latency_p95_ratio']}x and {min_increase} ms above it)"
            ),
            details={"baseline_p95_ms": str(baseline)},
        )
    )


def _unpriced_rule(cur, names, day, today, result: Evaluation) -> None:
    for project, provider, model, unpriced, first_day, last_day in cur.execute(
        sql.SQL(UNPRICED_SQL).format(**names), {"day": day, "today": today}
    ):
        result.judged["unpriced_model"].add(project)
        start, _ = _day_window(first_day)
        _, end = _day_window(last_day)
        # the subject keeps the names as the marts have them (the firing's key); the message shows them escaped
        name = labels.visible(f"{provider}/{model}")
        result.conditions.append(
            Condition(
                project_id=project,
                rule="unpriced_model",
                subject=f"{provider}/{model}",
                window_start=start,
                window_end=end,
                observed=Decimal(unpriced),
                threshold=Decimal(0),
                message=(
                    f"project {project}: model {name} has {unpriced:,} requests without a price since "
                    f"{first_day} (UTC); their cost is unknown until seeds/model_pricing.csv prices it"
                ),
                details={"first_day": first_day.isoformat(), "requests": int(unpriced)},
            )
        )
    # every project with recent by-model rows was judged: one whose model is priced again resolves
    judged = cur.execute(
        sql.SQL("select distinct project_id from {by_model} where date between %s and %s").format(**names),
        (day, today),
    )
    result.judged["unpriced_model"].update(project for (project,) in judged)


def _budget_rule(cur, names, today, result: Evaluation) -> None:
    month = today.replace(day=1)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    start, end = dt.datetime.combine(month, dt.time(), dt.UTC), dt.datetime.combine(next_month, dt.time(), dt.UTC)
    forecast = (
        sql.SQL(
            "(select forecast.forecast_cost_usd from {forecast} as forecast"
            " where forecast.project_id = budgets.project_id and forecast.month = %(month)s)"
        ).format(**names)
        if _has_relation(cur, "project_cost_forecast")
        else sql.SQL("null::numeric")
    )
    query = sql.SQL(BUDGET_SQL).format(daily=names["daily"], settings=names["settings"], forecast=forecast)
    for project, budget, month_to_date, projected in cur.execute(query, {"month": month, "today": today}):
        result.judged["monthly_budget"].add(project)
        result.judge(
            project,
            "monthly_budget",
            lambda p=project, b=budget, m=month_to_date, f=projected: _budget_condition(
                p, b, m, f, month, start, end, result
            ),
        )


def _budget_condition(project, budget, month_to_date, projected, month, start, end, result: Evaluation) -> None:
    crossed = [
        (percent, basis, value)
        for percent in settings.budget_alert_percents()
        for basis, value in (("month to date", month_to_date), ("forecast", projected))
        if value is not None and value >= budget * percent / 100
    ]
    if not crossed:
        return
    # the highest threshold crossed, by month to date when it crossed it, else by the forecast
    percent = max(p for p, _, _ in crossed)
    basis, value = next((b, v) for p, b, v in crossed if p == percent)
    result.conditions.append(
        Condition(
            project_id=project,
            rule="monthly_budget",
            subject=f"{month:%Y-%m} {percent}%",
            window_start=start,
            window_end=end,
            observed=value,
            threshold=budget * percent / 100,
            message=(
                f"project {project}: {basis} cost {money(value)} reached {percent}% of the monthly budget "
                f"{money(budget)} for {month:%Y-%m}"
                + ("" if basis == "month to date" else f" (month to date {money(month_to_date)})")
            ),
            details={"basis": basis, "budget_usd": str(budget), "month_to_date_usd": str(month_to_date)},
        )
    )


def _key_budget_rule(cur, names, today, result: Evaluation) -> None:
    month = today.replace(day=1)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    start, end = dt.datetime.combine(month, dt.time(), dt.UTC), dt.datetime.combine(next_month, dt.time(), dt.UTC)
    query = sql.SQL(KEY_BUDGET_SQL).format(by_dimension=names["by_dimension"], key_budgets=names["key_budgets"])
    for project, key, budget, month_to_date in cur.execute(query, {"month": month, "today": today}).fetchall():
        result.judged["key_budget"].add(project)
        result.judge(
            project,
            "key_budget",
            lambda p=project, k=key, b=budget, m=month_to_date: _key_budget_condition(
                p, k, b, m, month, start, end, result
            ),
        )


def _key_budget_condition(project, key, budget, month_to_date, month, start, end, result: Evaluation) -> None:
    crossed = [p for p in settings.budget_alert_percents() if month_to_date >= budget * p / 100]
    if not crossed:
        return
    percent = max(crossed)
    # the subject keeps the key as logged (the firing's key); the message shows it escaped
    result.conditions.append(
        Condition(
            project_id=project,
            rule="key_budget",
            subject=f"{key} {month:%Y-%m} {percent}%",
            window_start=start,
            window_end=end,
            observed=month_to_date,
            threshold=budget * percent / 100,
            message=(
                f"project {project}: API key {labels.visible(key)} spent {money(month_to_date)} month to date, "
                f"{percent}% of its monthly budget {money(budget)} for {month:%Y-%m}"
            ),
            details={"api_key_id": key, "budget_usd": str(budget), "month_to_date_usd": str(month_to_date)},
        )
    )
