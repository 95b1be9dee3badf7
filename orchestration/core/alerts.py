"""Alert rules over the built aggregates, their state in analytics.alert_events, and their delivery.

docs/alerts-and-reports.md is the user's page; docs/contract.md section 12 the interface. In short:
- `evaluate` judges every rule from the daily marts (never usage_logs): the last complete UTC day
  against the 7 days before it, the current UTC month for budgets. Those are index ranges of a few
  days, so a check costs the same whatever the length of history.
- `check` turns conditions into firings: a condition that holds and has no open firing fires once
  (a partial unique index makes a second open firing impossible, even for two checks at once); an
  open firing whose condition no longer holds resolves; a resolved one may fire again after the
  cooldown (the unpriced-model alert fires once per project and model, ever).
- `deliver` sends every firing not yet delivered to each configured channel, one row lock per
  firing (two checks never send the same firing), and records every attempt. A failed channel is
  retried by later checks with exponential backoff; a channel that succeeded is never resent.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from email.message import EmailMessage

from psycopg import sql
from psycopg.types.json import Jsonb

from orchestration import settings
from orchestration.core import delivery
from orchestration.core.errors import UserError

# The latency sketch's constants (macros/aggregation/latency_sketch.sql): a key <= 100 is an exact
# latency in ms, key 100 + j the log bucket j with g = 1.009 / 0.991.
SKETCH_EXACT_BELOW_MS = 100
SKETCH_GAMMA = 1.0181634712411705
MAX_BACKOFF = dt.timedelta(hours=6)
SHOWN_PER_KIND = 20  # lines of firings `alerts check` prints; `alerts list` has them all

ALERT_TABLES_DDL = """
create schema if not exists {schema};
create table if not exists {events} (
    id bigint generated always as identity primary key,
    project_id uuid not null,
    rule text not null,
    subject text not null default '',
    window_start timestamptz not null,
    window_end timestamptz not null,
    observed numeric not null,
    threshold numeric not null,
    message text not null,
    details jsonb not null default '{{}}',
    fired_at timestamptz not null default now(),
    delivered_at timestamptz,
    webhook_delivered_at timestamptz,
    email_delivered_at timestamptz,
    delivery_attempts integer not null default 0,
    next_attempt_at timestamptz,
    last_error text,
    resolved_at timestamptz
);
create unique index if not exists alert_events_one_open_firing
    on {events} (project_id, rule, subject) where resolved_at is null;
create index if not exists alert_events_undelivered on {events} (id) where delivered_at is null;
create index if not exists alert_events_by_project on {events} (project_id, fired_at);
create table if not exists {attempts} (
    event_id bigint not null references {events} (id) on delete cascade,
    channel text not null,
    attempted_at timestamptz not null default now(),
    succeeded boolean not null,
    error text
);
create index if not exists alert_delivery_attempts_by_event on {attempts} (event_id);
alter table {events} enable row level security;
alter table {attempts} enable row level security;
revoke all on {events}, {attempts} from public;
"""


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
    (an open firing of a judged project whose condition is gone resolves; one not judged stays open)."""

    as_of: dt.datetime
    judged_day: dt.date
    conditions: list[Condition] = field(default_factory=list)
    judged: dict[str, set[uuid.UUID]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    evaluation: Evaluation
    fired: list[dict] = field(default_factory=list)
    resolved: list[dict] = field(default_factory=list)
    suppressed: list[Condition] = field(default_factory=list)  # in their cooldown
    delivered: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # attempts that failed this time, retried later
    pending: int = 0  # firings still waiting for a channel (failed, backing off, or no channel set)


def _names() -> dict[str, sql.Composable]:
    schema = settings.analytics_schema()
    return {
        "schema": sql.Identifier(schema),
        "daily": sql.Identifier(schema, "usage_aggregations_daily"),
        "by_model": sql.Identifier(schema, "usage_by_model_daily"),
        "forecast": sql.Identifier(schema, "project_cost_forecast"),
        "settings": sql.Identifier(schema, "project_settings"),
        "events": sql.Identifier(schema, "alert_events"),
        "attempts": sql.Identifier(schema, "alert_delivery_attempts"),
    }


def ensure_tables(cur) -> None:
    """Create alert_events and alert_delivery_attempts when missing (idempotent, safe for two at once)."""
    names = _names()
    query = "select to_regclass(%s), to_regclass(%s)"
    tables = _qualified("alert_events", "alert_delivery_attempts")
    if all(cur.execute(query, tables).fetchone()):
        return
    with cur.connection.transaction():
        cur.execute("select pg_advisory_xact_lock(hashtext('watchllm_alert_tables'))")
        if all(cur.execute(query, tables).fetchone()):
            return  # the other one created them while this one waited
        for statement in ALERT_TABLES_DDL.split(";"):
            if statement.strip():
                cur.execute(sql.SQL(statement).format(**names))


def _qualified(*tables: str) -> tuple[str, ...]:
    schema = settings.analytics_schema().replace('"', '""')
    return tuple(f'"{schema}"."{table}"' for table in tables)


def _require_marts(cur) -> None:
    found = cur.execute(
        "select to_regclass(%s), to_regclass(%s)", _qualified("usage_aggregations_daily", "usage_by_model_daily")
    ).fetchone()
    if not all(found):
        raise UserError("the aggregates are not built yet: run `watchllm-analytics dbt build` first")


def sketch_value(key: int) -> Decimal:
    """The latency (ms) a sketch key stands for, exactly as the models report it."""
    if key <= SKETCH_EXACT_BELOW_MS:
        return Decimal(key)
    value = SKETCH_EXACT_BELOW_MS * 2 * SKETCH_GAMMA ** (key - SKETCH_EXACT_BELOW_MS) / (1 + SKETCH_GAMMA)
    return Decimal(repr(value)).quantize(Decimal("0.01"))


# -- the rules ------------------------------------------------------------------------------------

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
        max(latency_p95_ms) filter (where date = %(day)s) as day_p95,
        min(latency_p95_ms) filter (where date < %(day)s) as base_min_p95
    from {daily} as daily
    where date between %(day)s::date - 7 and %(day)s
    group by daily.project_id
)
select
    judged_days.*,
    coalesce(overrides.hit_rate_drop_points, %(points)s) as points,
    coalesce(overrides.cost_spike_ratio, %(spike_ratio)s) as spike_ratio,
    coalesce(overrides.cost_spike_min_usd, %(spike_min_usd)s) as spike_min_usd,
    coalesce(overrides.latency_p95_ratio, %(latency_ratio)s) as latency_ratio
from judged_days
left join {settings} as overrides on overrides.project_id = judged_days.project_id
where judged_days.day_requests > 0
order by judged_days.project_id
"""

BASELINE_P95_SQL = """
with entries as (
    select sketched.project_id, entry.key::integer as sketch_key, sum(entry.value::bigint) as requests
    from {daily} as sketched
    cross join lateral jsonb_each_text(sketched.latency_sketch) as entry
    where sketched.date between %(day)s::date - 7 and %(day)s::date - 1
      and sketched.project_id = any(%(projects)s)
    group by sketched.project_id, entry.key::integer
),
ranked as (
    select
        project_id,
        sketch_key,
        sum(requests) over (partition by project_id order by sketch_key) as running,
        sum(requests) over (partition by project_id) as known
    from entries
)
select project_id, min(sketch_key) filter (where running >= ceil(0.95 * known)) as p95_key, max(known) as known
from ranked
group by project_id
"""

UNPRICED_SQL = """
select project_id, provider, model, sum(unpriced_requests) as unpriced, min(date) as first_day, max(date) as last_day
from {by_model}
where date between %(day)s and %(today)s and unpriced_requests > 0
group by project_id, provider, model
order by project_id, provider, model
"""

BUDGET_SQL = """
select
    budgets.project_id,
    budgets.monthly_budget_usd,
    (select coalesce(sum(daily.total_cost_usd), 0) from {daily} as daily
     where daily.project_id = budgets.project_id and daily.date between %(month)s and %(today)s) as month_to_date,
    (select forecast.forecast_cost_usd from {forecast} as forecast
     where forecast.project_id = budgets.project_id and forecast.month = %(month)s) as forecast
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
    has_settings = cur.execute(
        "select count(*) = 5 from information_schema.columns"
        " where table_schema = %s and table_name = 'project_settings'"
        " and column_name in ('monthly_budget_usd', 'hit_rate_drop_points', 'cost_spike_ratio', 'cost_spike_min_usd',"
        " 'latency_p95_ratio')",
        (settings.analytics_schema(),),
    ).fetchone()[0]
    if not has_settings:
        result.notes.append(
            "project_settings is missing or older than this version (run dbt build): no budgets or overrides"
        )

    built = cur.execute(sql.SQL("select exists (select 1 from {daily} where date = %s)").format(**names), (day,))
    if built.fetchone()[0]:
        _daily_rules(cur, names, day, result, has_settings)
    else:
        result.notes.append(f"no aggregates for {day} yet: the day rules wait for the build")
    _unpriced_rule(cur, names, day, today, result)
    if has_settings:
        _budget_rule(cur, names, today, result)
    return result


def _day_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return start, start + dt.timedelta(days=1)


def _daily_rules(cur, names, day: dt.date, result: Evaluation, has_settings: bool) -> None:
    query = (
        DAILY_RULES_SQL
        if has_settings
        else DAILY_RULES_SQL.replace(
            "left join {settings} as overrides on overrides.project_id = judged_days.project_id",
            "left join (select null::uuid as project_id, null::numeric as hit_rate_drop_points,"
            " null::numeric as cost_spike_ratio, null::numeric as cost_spike_min_usd,"
            " null::numeric as latency_p95_ratio) as overrides on false",
        )
    )
    params = {
        "day": day,
        "points": settings.hit_rate_drop_points(),
        "spike_ratio": settings.cost_spike_ratio(),
        "spike_min_usd": settings.cost_spike_min_usd(),
        "latency_ratio": settings.latency_p95_ratio(),
    }
    rows = cur.execute(sql.SQL(query).format(**names), params).fetchall()
    columns = [c.name for c in cur.description]
    rows = [dict(zip(columns, row, strict=True)) for row in rows]
    min_requests = settings.hit_rate_min_requests()
    start, end = _day_window(day)
    for row in rows:
        _hit_rate_rule(row, day, start, end, min_requests, result)
        _cost_spike_rule(row, day, start, end, result)
    _latency_rule(cur, names, rows, day, start, end, min_requests, result)


def _hit_rate_rule(row, day, start, end, min_requests, result: Evaluation) -> None:
    if row["day_requests"] < min_requests or (row["base_requests"] or 0) < min_requests:
        return
    result.judged["cache_hit_rate_drop"].add(row["project_id"])
    day_rate = Decimal(100) * row["day_cached"] / row["day_requests"]
    base_rate = Decimal(100) * row["base_cached"] / row["base_requests"]
    if base_rate - day_rate <= row["points"]:
        return
    result.conditions.append(
        Condition(
            project_id=row["project_id"],
            rule="cache_hit_rate_drop",
            subject="",
            window_start=start,
            window_end=end,
            observed=round(day_rate, 2),
            threshold=round(base_rate - row["points"], 2),
            message=(
                f"project {row['project_id']}: cache hit rate fell to {day_rate:.2f}% on {day} (UTC), "
                f"from {base_rate:.2f}% over the 7 days before (alert at a drop of more than {row['points']} points)"
            ),
            details={"baseline_hit_rate_pct": str(round(base_rate, 2)), "requests": int(row["day_requests"])},
        )
    )


def _cost_spike_rule(row, day, start, end, result: Evaluation) -> None:
    if not row["base_requests"]:
        return  # a project's first day is not a spike
    result.judged["daily_cost_spike"].add(row["project_id"])
    baseline = row["base_cost"] / 7  # the trailing 7 days' daily average, days without traffic as 0
    threshold = max(baseline * row["spike_ratio"], baseline + row["spike_min_usd"])
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
                f"project {row['project_id']}: spent {_money(row['day_cost'])} on {day} (UTC), {ratio} its trailing "
                f"7-day daily average of {_money(baseline)} (alert at {row['spike_ratio']}x and "
                f"{_money(row['spike_min_usd'])} above it)"
            ),
            details={"baseline_daily_cost_usd": str(baseline)},
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
        if r["day_p95"] >= max(r["base_min_p95"] * r["latency_ratio"], r["base_min_p95"] + min_increase)
    ]
    result.judged["latency_p95_regression"].update(r["project_id"] for r in judged)
    if not candidates:
        return
    query = sql.SQL(BASELINE_P95_SQL).format(**names)
    # the merged sketch of the 7 days before, as its nearest-rank p95 key (merging adds counts per key)
    baselines = {
        project: (key, known)
        for project, key, known in cur.execute(query, {"day": day, "projects": [r["project_id"] for r in candidates]})
    }
    for row in candidates:
        key, known = baselines.get(row["project_id"], (None, 0))
        if key is None:
            continue
        baseline = sketch_value(key)
        threshold = max(baseline * row["latency_ratio"], baseline + min_increase)
        if row["day_p95"] < threshold:
            continue
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
                    f"{row['day_p95'] / baseline:.1f}x the {baseline:,.0f} ms of the 7 days before "
                    f"(alert at {row['latency_ratio']}x and {min_increase} ms above it)"
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
                    f"project {project}: model {provider}/{model} has {unpriced:,} requests without a price since "
                    f"{first_day} (UTC); their cost is unknown until seeds/model_pricing.csv prices it"
                ),
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
    has_forecast = cur.execute("select to_regclass(%s)", _qualified("project_cost_forecast")).fetchone()[0]
    query = (
        BUDGET_SQL
        if has_forecast
        else BUDGET_SQL.replace(
            "(select forecast.forecast_cost_usd from {forecast} as forecast\n"
            "     where forecast.project_id = budgets.project_id and forecast.month = %(month)s)",
            "null::numeric",
        )
    )
    for project, budget, month_to_date, forecast in cur.execute(
        sql.SQL(query).format(**names), {"month": month, "today": today}
    ):
        result.judged["monthly_budget"].add(project)
        crossed = [
            (percent, basis, value)
            for percent in settings.budget_alert_percents()
            for basis, value in (("month to date", month_to_date), ("forecast", forecast))
            if value is not None and value >= budget * percent / 100
        ]
        if not crossed:
            continue
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
                    f"project {project}: {basis} cost {_money(value)} reached {percent}% of the monthly budget "
                    f"{_money(budget)} for {month:%Y-%m}"
                    + ("" if basis == "month to date" else f" (month to date {_money(month_to_date)})")
                ),
                details={"basis": basis, "budget_usd": str(budget), "month_to_date_usd": str(month_to_date)},
            )
        )


def _money(value: Decimal) -> str:
    return f"${value:,.2f}"


# -- the state ------------------------------------------------------------------------------------


def check(
    conn,
    as_of: dt.datetime | None = None,
    dry_run: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> CheckResult:
    """Evaluate, record firings and resolutions, then deliver what is undelivered (`conn`: autocommit)."""
    with conn.cursor() as cur:
        if not dry_run:
            ensure_tables(cur)
        evaluation = evaluate(cur, as_of)
    result = CheckResult(evaluation=evaluation)
    if dry_run:
        return _dry_run(conn, result)
    names = _names()
    with conn.transaction(), conn.cursor() as cur:
        # one check at a time changes the state; a second one waits and then sees the first's firings
        cur.execute("select pg_advisory_xact_lock(hashtext('watchllm_alert_state'))")
        open_rows = cur.execute(
            sql.SQL("select id, project_id, rule, subject from {events} where resolved_at is null").format(**names)
        ).fetchall()
        open_by_key = {(p, r, s): i for i, p, r, s in open_rows}
        holding = {c.key for c in evaluation.conditions}
        for (project, rule, subject), event_id in open_by_key.items():
            if (project, rule, subject) not in holding and project in evaluation.judged.get(rule, set()):
                row = cur.execute(
                    sql.SQL(
                        "update {events} set resolved_at = now() where id = %s"
                        " returning id, project_id, rule, subject, message"
                    ).format(**names),
                    (event_id,),
                ).fetchone()
                result.resolved.append(_event_dict(cur, row))
                log(f"resolved #{row[0]} {rule} for {project} {subject}".rstrip())
        for condition in evaluation.conditions:
            if condition.key in open_by_key:
                continue
            if _in_cooldown(cur, names, condition):
                result.suppressed.append(condition)
                continue
            row = cur.execute(
                sql.SQL(
                    "insert into {events} (project_id, rule, subject, window_start, window_end, observed, threshold,"
                    " message, details) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " on conflict (project_id, rule, subject) where resolved_at is null do nothing"
                    " returning id, project_id, rule, subject, message"
                ).format(**names),
                (
                    condition.project_id,
                    condition.rule,
                    condition.subject,
                    condition.window_start,
                    condition.window_end,
                    condition.observed,
                    condition.threshold,
                    condition.message,
                    Jsonb({name: _plain(value) for name, value in condition.details.items()}),
                ),
            ).fetchone()
            if row:
                result.fired.append(_event_dict(cur, row))
                log(f"fired #{row[0]}: {condition.message}")
    deliver(conn, result, log)
    return result


def _event_dict(cur, row) -> dict:
    return dict(zip(("id", "project_id", "rule", "subject", "message"), row, strict=True))


def _in_cooldown(cur, names, condition: Condition) -> bool:
    last = cur.execute(
        sql.SQL("select max(resolved_at) from {events} where project_id = %s and rule = %s and subject = %s").format(
            **names
        ),
        condition.key,
    ).fetchone()[0]
    if last is None:
        return False
    if condition.rule == "unpriced_model":
        return True  # once per project and model
    return last > dt.datetime.now(dt.UTC) - settings.alert_cooldown()


def _dry_run(conn, result: CheckResult) -> CheckResult:
    names = _names()
    with conn.cursor() as cur:
        exists = cur.execute("select to_regclass(%s)", _qualified("alert_events")).fetchone()[0]
        open_keys = set()
        if exists:
            open_keys = {
                tuple(row)
                for row in cur.execute(
                    sql.SQL("select project_id, rule, subject from {events} where resolved_at is null").format(**names)
                )
            }
        for condition in result.evaluation.conditions:
            if condition.key not in open_keys and not (exists and _in_cooldown(cur, names, condition)):
                result.fired.append({"id": None, **_condition_dict(condition)})
        for key in open_keys:
            if key not in {c.key for c in result.evaluation.conditions} and key[0] in result.evaluation.judged[key[1]]:
                result.resolved.append({"id": None, "project_id": key[0], "rule": key[1], "subject": key[2]})
    return result


def _condition_dict(condition: Condition) -> dict:
    return {
        "project_id": condition.project_id,
        "rule": condition.rule,
        "subject": condition.subject,
        "message": condition.message,
    }


# -- delivery -------------------------------------------------------------------------------------

UNDELIVERED_SQL = """
select e.id, e.project_id, e.rule, e.subject, e.window_start, e.window_end, e.observed, e.threshold, e.message,
    e.details, e.fired_at, e.resolved_at, e.webhook_delivered_at, e.email_delivered_at, e.delivery_attempts
from {events} as e
where e.delivered_at is null and (e.next_attempt_at is null or e.next_attempt_at <= now())
order by e.id
"""


def _project_recipients(cur, project_id: uuid.UUID) -> tuple[str, ...]:
    found = cur.execute(
        "select 1 from information_schema.columns where table_schema = %s and table_name = 'project_settings'"
        " and column_name = 'alert_email_to'",
        (settings.analytics_schema(),),
    ).fetchone()
    if found is None:
        return ()
    row = cur.execute(
        sql.SQL("select alert_email_to from {settings} where project_id = %s").format(**_names()), (project_id,)
    ).fetchone()
    return tuple(part.strip() for part in (row[0] or "").split(",") if part.strip()) if row else ()


def deliver(conn, result: CheckResult, log: Callable[[str], None] = lambda line: None) -> None:
    """Send every undelivered firing whose backoff has passed to each configured channel that has not had it."""
    names = _names()
    webhook, smtp = settings.alert_webhook_url(), settings.smtp_url()
    with conn.cursor() as cur:
        candidates = [row[0] for row in cur.execute(sql.SQL(UNDELIVERED_SQL).format(**names))]
    for event_id in candidates:
        with conn.transaction(), conn.cursor() as cur:
            # skip locked: a firing another check is sending right now is theirs
            row = cur.execute(
                sql.SQL(UNDELIVERED_SQL.replace("order by e.id", "and e.id = %s for update skip locked")).format(
                    **names
                ),
                (event_id,),
            ).fetchone()
            if row is None:
                continue
            event = dict(zip([c.name for c in cur.description], row, strict=True))
            recipients = (*settings.alert_email_to(), *_project_recipients(cur, event["project_id"]))
            channels = {}
            if webhook and event["webhook_delivered_at"] is None:
                channels["webhook"] = lambda e=event: delivery.post_json(webhook, webhook_payload(e))
            if smtp and recipients and event["email_delivered_at"] is None:
                channels["email"] = lambda e=event, r=recipients: delivery.send_email(smtp, alert_email(e, r))
            if not channels:
                configured = (webhook is not None) or (smtp is not None and bool(recipients))
                if configured:  # every configured channel already has it
                    cur.execute(
                        sql.SQL("update {events} set delivered_at = now() where id = %s").format(**names), (event_id,)
                    )
                    result.delivered.append(event)
                else:
                    result.pending += 1
                continue
            errors = {}
            for channel, send in channels.items():
                try:
                    send()
                except delivery.DeliveryError as exc:
                    errors[channel] = str(exc)
                cur.execute(
                    sql.SQL(
                        "insert into {attempts} (event_id, channel, succeeded, error) values (%s, %s, %s, %s)"
                    ).format(**names),
                    (event_id, channel, channel not in errors, errors.get(channel)),
                )
                if channel not in errors:
                    cur.execute(
                        sql.SQL("update {events} set {column} = now() where id = %s").format(
                            column=sql.Identifier(f"{channel}_delivered_at"), **names
                        ),
                        (event_id,),
                    )
            attempts = event["delivery_attempts"] + 1
            if errors:
                wait = min(settings.alert_retry_base() * 2 ** (attempts - 1), MAX_BACKOFF)
                cur.execute(
                    sql.SQL(
                        "update {events} set delivery_attempts = %s, last_error = %s, next_attempt_at = now() + %s"
                        " where id = %s"
                    ).format(**names),
                    (attempts, "; ".join(f"{c}: {e}" for c, e in errors.items()), wait, event_id),
                )
                result.failed.append({**event, "errors": errors})
                result.pending += 1
                log(
                    f"delivery of #{event_id} failed ({'; '.join(f'{c}: {e}' for c, e in errors.items())});"
                    " retried later"
                )
            else:
                cur.execute(
                    sql.SQL(
                        "update {events} set delivery_attempts = %s, last_error = null, next_attempt_at = null,"
                        " delivered_at = now() where id = %s"
                    ).format(**names),
                    (attempts, event_id),
                )
                result.delivered.append(event)
                log(f"delivered #{event_id} by {', '.join(channels)}")
    with conn.cursor() as cur:
        result.pending = cur.execute(
            sql.SQL("select count(*) from {events} where delivered_at is null").format(**names)
        ).fetchone()[0]


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def webhook_payload(event: dict) -> dict:
    """The JSON body: a human `text` (Slack, Discord and similar incoming webhooks show it) and the fields.
    Money and milliseconds are decimal strings, so no figure passes through a float."""
    resolved = f" (resolved since {event['resolved_at']:%Y-%m-%d %H:%M} UTC)" if event.get("resolved_at") else ""
    return {
        "text": f":rotating_light: watchllm alert: {event['message']}{resolved}",
        "event_id": event["id"],
        **{
            name: _plain(event[name])
            for name in ("project_id", "rule", "subject", "observed", "threshold", "window_start", "window_end")
        },
        "fired_at": _plain(event["fired_at"]),
        "resolved_at": _plain(event.get("resolved_at")),
        "details": event.get("details") or {},
    }


def alert_email(event: dict, recipients: tuple[str, ...]) -> EmailMessage:
    """One firing as a plain-text and HTML email (one project's figures only)."""
    message = EmailMessage()
    message["Subject"] = f"[watchllm] {event['rule'].replace('_', ' ')}: project {event['project_id']}"
    message["From"] = settings.email_from()
    message["To"] = ", ".join(recipients)
    message["X-Watchllm-Alert-Id"] = str(event["id"])
    payload = webhook_payload(event)
    fields = "\n".join(
        f"{name}: {payload[name]}"
        for name in ("rule", "subject", "observed", "threshold", "window_start", "window_end", "fired_at")
    )
    message.set_content(f"{event['message']}\n\n{fields}\n")
    rows = "".join(
        f"<tr><th align='left'>{name}</th><td>{delivery.escape(str(payload[name]))}</td></tr>"
        for name in ("project_id", "rule", "subject", "observed", "threshold", "window_start", "window_end", "fired_at")
    )
    message.add_alternative(
        f"<html><body><p>{delivery.escape(event['message'])}</p><table>{rows}</table></body></html>", subtype="html"
    )
    return message


def recent_events(cur, limit: int = 50, open_only: bool = False) -> list[dict]:
    ensure_tables(cur)
    query = sql.SQL(
        "select id, project_id, rule, subject, observed, threshold, fired_at, delivered_at, resolved_at,"
        " delivery_attempts, last_error from {events} {where} order by id desc limit %s"
    ).format(where=sql.SQL("where resolved_at is null" if open_only else ""), **_names())
    rows = cur.execute(query, (limit,)).fetchall()
    columns = [c.name for c in cur.description]
    return [dict(zip(columns, row, strict=True)) for row in rows]


def summary_lines(result: CheckResult, dry_run: bool = False) -> list[str]:
    verb = "would fire" if dry_run else "fired"
    lines = [
        f"alerts as of {result.evaluation.as_of:%Y-%m-%d %H:%M} UTC (day rules judge {result.evaluation.judged_day})"
    ]
    lines += [f"  note: {note}" for note in result.evaluation.notes]
    for event in result.fired[:SHOWN_PER_KIND]:
        lines.append(f"  {verb}{'' if event['id'] is None else ' #' + str(event['id'])}: {event['message']}")
    if len(result.fired) > SHOWN_PER_KIND:
        lines.append(f"  ... and {len(result.fired) - SHOWN_PER_KIND} more (`alerts list` shows them all)")
    for event in result.resolved:
        label = "would resolve" if dry_run else f"resolved #{event['id']}"
        lines.append(f"  {label}: {event['rule']} for {event['project_id']} {event['subject']}".rstrip())
    for condition in result.suppressed:
        lines.append(
            f"  in cooldown, not fired: {condition.rule} for {condition.project_id} {condition.subject}".rstrip()
        )
    if not dry_run:
        lines.append(
            f"  {len(result.fired)} fired, {len(result.resolved)} resolved, {len(result.delivered)} delivered, "
            f"{len(result.failed)} deliveries failed (retried by the next check), {result.pending} undelivered"
        )
        if result.pending and not (settings.alert_webhook_url() or settings.smtp_url()):
            lines.append(
                "  no channel is configured: set WATCHLLM_ALERT_WEBHOOK_URL, or WATCHLLM_SMTP_URL and "
                "WATCHLLM_ALERT_EMAIL_TO; undelivered alerts are sent once one is"
            )
    return lines


def to_json(result: CheckResult) -> str:
    return json.dumps(
        {
            "fired": [{k: _plain(v) for k, v in e.items()} for e in result.fired],
            "resolved": [{k: _plain(v) for k, v in e.items()} for e in result.resolved],
            "delivered": [e["id"] for e in result.delivered],
            "pending": result.pending,
        }
    )
