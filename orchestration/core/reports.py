"""The savings report: a week (or the last N days) of one project, as HTML with charts, PNGs and email.

Every figure comes from the marts: the days (in the project's reporting time zone) from the
three-argument get_dashboard_stats, the models from usage_by_model_daily, the forecast from
project_cost_forecast, the alerts from alert_events. Totals are sums of the days, and rates are
ratios of those sums (never averages of daily rates). docs/alerts-and-reports.md shows an example.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import re
import uuid
import zoneinfo
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from psycopg import sql

from orchestration import settings
from orchestration.core import dashboard, labels, templating
from orchestration.core.delivery import parse_addresses
from orchestration.core.errors import UserError
from orchestration.core.formatting import money, percent

CHART_SIZE_PX = (800, 320)
CHART_DPI = 100
TOP_MODELS = 8
WEEK_PATTERN = re.compile(r"^(\d{4})-W(\d{2})$")
COLORS = {"cost": "#d1495b", "potential": "#9aa5b1", "savings": "#2e8b57", "line": "#00798c", "p95": "#edae49"}


@dataclass(frozen=True)
class Period:
    """Local calendar days [first_day, last_day] of the report, and the same length just before."""

    label: str
    first_day: dt.date
    last_day: dt.date

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def previous(self) -> Period:
        last = self.first_day - dt.timedelta(days=1)
        return Period(label="the period before", first_day=last - dt.timedelta(days=self.days - 1), last_day=last)

    def contains(self, day: dt.date) -> bool:
        return self.first_day <= day <= self.last_day


def parse_week(text: str) -> Period:
    match = WEEK_PATTERN.match(text or "")
    if not match:
        raise UserError(f"--week must be an ISO week like 2026-W47, got {text!r}")
    try:
        monday = dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise UserError(f"--week {text} does not exist (ISO years have 52 or 53 weeks)") from None
    return week_period(monday)


def week_period(monday: dt.date) -> Period:
    year, week, _ = monday.isocalendar()
    return Period(label=f"{year}-W{week:02d}", first_day=monday, last_day=monday + dt.timedelta(days=6))


def last_complete_week(today: dt.date) -> Period:
    """The last ISO week that has ended before `today`."""
    this_monday = today - dt.timedelta(days=today.weekday())
    return week_period(this_monday - dt.timedelta(days=7))


def last_days(today: dt.date, days: int) -> Period:
    if not 1 <= days <= 183:
        raise UserError(f"--days must be between 1 and 183 (the report also shows the days before), got {days}")
    return Period(label=f"last {days} days", first_day=today - dt.timedelta(days=days - 1), last_day=today)


@dataclass
class Totals:
    requests: int = 0
    cached: int = 0
    cost: Decimal | None = Decimal(0)  # None: every day's figure is unknown (unpriced traffic only)
    potential: Decimal | None = Decimal(0)
    savings: Decimal | None = Decimal(0)
    prompt_cache_savings: Decimal | None = Decimal(0)  # the provider's prompt cache (section 14)
    errors: int = 0  # requests answered with an HTTP error (section 15)

    @property
    def hit_rate(self) -> Decimal | None:
        return Decimal(100) * self.cached / self.requests if self.requests else None

    @property
    def error_rate(self) -> Decimal | None:
        return Decimal(100) * self.errors / self.requests if self.requests else None

    @classmethod
    def of(cls, days: list[dict]) -> Totals:
        return cls(
            requests=sum(d["total_requests"] for d in days),
            cached=sum(d["cached_requests"] for d in days),
            cost=_known_sum(d["total_cost_usd"] for d in days),
            potential=_known_sum(d["total_potential_cost_usd"] for d in days),
            savings=_known_sum(d["total_savings_usd"] for d in days),
            prompt_cache_savings=_known_sum(d.get("prompt_cache_savings_usd", 0) for d in days),
            errors=sum(d.get("error_requests") or 0 for d in days),
        )


def _known_sum(values) -> Decimal | None:
    """The sum of the known values; None (unknown, never $0) when there are values and none is known.
    A day without traffic is 0 in get_dashboard_stats, so a period without traffic sums to 0."""
    values = list(values)
    known = [v for v in values if v is not None]
    return sum(known, Decimal(0)) if known or not values else None


@dataclass
class ReportData:
    project_id: uuid.UUID
    period: Period
    time_zone: str
    days: list[dict]  # get_dashboard_stats rows of the period, oldest first
    totals: Totals
    previous: Totals
    models: list[dict]  # usage_by_model_daily summed over the period's dates
    providers: Counter
    alerts: list[dict]
    forecast: dict | None
    # dimension (api_key, end_user) -> its top values by cost and (other), where the project logs them
    breakdowns: dict[str, list[dict]] = field(default_factory=dict)
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def reporting_time_zone(cur, project_id: uuid.UUID) -> str:
    """The project's time_zone from analytics.project_settings, UTC without a row."""
    table = sql.Identifier(settings.analytics_schema(), "project_settings")
    if cur.execute("select to_regclass(%s)", (f'"{settings.analytics_schema()}".project_settings',)).fetchone()[0]:
        row = cur.execute(sql.SQL("select time_zone from {} where project_id = %s").format(table), (project_id,))
        found = row.fetchone()
        if found and found[0]:
            return found[0]
    return "UTC"


def local_today(time_zone: str) -> dt.date:
    try:
        return dt.datetime.now(zoneinfo.ZoneInfo(time_zone)).date()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UserError(f"time zone {time_zone!r} is not an IANA name such as 'Europe/Berlin'") from None


def gather(cur, project_id: uuid.UUID, period: Period, time_zone: str) -> ReportData:
    today = local_today(time_zone)
    if period.first_day > today:
        raise UserError(f"{period.label} has not started yet in {time_zone}: pick an earlier --week")
    span = (today - period.previous.first_day).days + 1
    if span > 366:
        raise UserError(f"{period.label} is too far back: get_dashboard_stats serves the last 366 days")
    rows = dashboard.dashboard_stats(cur, project_id, span, time_zone)
    current = [r for r in rows if period.contains(r["date"])]
    before = [r for r in rows if period.previous.contains(r["date"])]
    providers: Counter = Counter()
    for row in current:
        providers.update(row["requests_by_provider"] or {})
    return ReportData(
        project_id=project_id,
        period=period,
        time_zone=time_zone,
        days=current,
        totals=Totals.of(current),
        previous=Totals.of(before),
        models=_models(cur, project_id, period),
        providers=providers,
        alerts=_alerts(cur, project_id, period, time_zone),
        forecast=_forecast(cur, project_id),
        breakdowns={
            dimension: rows
            for dimension in BREAKDOWN_DIMENSIONS
            if (rows := _breakdown(cur, project_id, period, dimension))
        },
    )


BREAKDOWN_DIMENSIONS = ("api_key", "end_user")
BREAKDOWN_TOP = 10


def _breakdown(cur, project_id: uuid.UUID, period: Period, dimension: str) -> list[dict]:
    """The top values of a dimension by cost over the period's UTC dates (usage_by_dimension_daily),
    then (other) with the rest; [] when the project logs no value of it."""
    if (
        cur.execute(
            "select to_regclass(%s)", (f'"{settings.analytics_schema()}".usage_by_dimension_daily',)
        ).fetchone()[0]
        is None
    ):
        return []
    query = sql.SQL(
        "select value, sum(total_requests) as requests, sum(error_requests) as errors,"
        " sum(total_cost_usd) as cost, sum(total_savings_usd) as savings"
        " from {} where project_id = %s and dimension = %s and date between %s and %s group by value"
        " order by cost desc nulls last, requests desc, value"
    ).format(sql.Identifier(settings.analytics_schema(), "usage_by_dimension_daily"))
    names = ("value", "requests", "errors", "cost", "savings")
    rows = [
        dict(zip(names, r, strict=True))
        for r in cur.execute(query, (project_id, dimension, period.first_day, period.last_day))
    ]
    if all(r["value"] == "(none)" for r in rows):
        return []
    top, rest = rows[:BREAKDOWN_TOP], rows[BREAKDOWN_TOP:]
    if rest:
        # counts add up; money only over the known values, unknown (None, never $0) when none is known
        top.append({
            "value": "(other)",
            **{n: sum(r[n] for r in rest) for n in ("requests", "errors")},
            **{n: _known_sum(r[n] for r in rest) for n in ("cost", "savings")},
        })
    return top


def _models(cur, project_id: uuid.UUID, period: Period) -> list[dict]:
    query = sql.SQL(
        "select provider, model, sum(total_requests) as requests, sum(cached_requests) as cached,"
        " coalesce(sum(total_cost_usd), 0) as cost, coalesce(sum(total_savings_usd), 0) as savings"
        " from {} where project_id = %s and date between %s and %s group by provider, model"
        " order by cost desc, provider, model"
    ).format(sql.Identifier(settings.analytics_schema(), "usage_by_model_daily"))
    rows = cur.execute(query, (project_id, period.first_day, period.last_day)).fetchall()
    return [dict(zip(("provider", "model", "requests", "cached", "cost", "savings"), r, strict=True)) for r in rows]


def _alerts(cur, project_id: uuid.UUID, period: Period, time_zone: str) -> list[dict]:
    if cur.execute("select to_regclass(%s)", (f'"{settings.analytics_schema()}".alert_events',)).fetchone()[0] is None:
        return []
    zone = zoneinfo.ZoneInfo(time_zone)
    start = dt.datetime.combine(period.first_day, dt.time(), zone)
    end = dt.datetime.combine(period.last_day + dt.timedelta(days=1), dt.time(), zone)
    query = sql.SQL(
        "select id, rule, subject, message, fired_at, resolved_at from {} where project_id = %s"
        " and fired_at >= %s and fired_at < %s order by fired_at"
    ).format(sql.Identifier(settings.analytics_schema(), "alert_events"))
    rows = cur.execute(query, (project_id, start, end)).fetchall()
    return [dict(zip(("id", "rule", "subject", "message", "fired_at", "resolved_at"), r, strict=True)) for r in rows]


def _forecast(cur, project_id: uuid.UUID) -> dict | None:
    table = f'"{settings.analytics_schema()}".project_cost_forecast'
    if cur.execute("select to_regclass(%s)", (table,)).fetchone()[0] is None:
        return None
    row = cur.execute(
        sql.SQL(
            "select month, as_of_date, month_to_date_cost_usd, forecast_cost_usd, forecast_low_usd, forecast_high_usd"
            " from {} where project_id = %s"
        ).format(sql.Identifier(settings.analytics_schema(), "project_cost_forecast")),
        (project_id,),
    ).fetchone()
    names = ("month", "as_of_date", "month_to_date", "forecast", "low", "high")
    return dict(zip(names, row, strict=True)) if row else None


# -- charts ---------------------------------------------------------------------------------------


def render_charts(data: ReportData) -> dict[str, bytes]:
    """The five charts as PNG bytes, each CHART_SIZE_PX pixels, keyed by file stem."""
    import matplotlib

    matplotlib.use("Agg")
    # a label is text, never mathtext ("$x$") or TeX: tenants choose model and provider names
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        return _render_charts(data)


def _render_charts(data: ReportData) -> dict[str, bytes]:
    from matplotlib import pyplot as plt

    labels = [f"{d['date']:%a %d}" if data.period.days <= 14 else f"{d['date']:%m-%d}" for d in data.days]
    positions = list(range(len(data.days)))
    charts: dict[str, bytes] = {}

    def finish(name: str, figure) -> None:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=CHART_DPI)
        plt.close(figure)
        charts[name] = buffer.getvalue()

    def figure(title: str):
        fig, axes = plt.subplots(figsize=(CHART_SIZE_PX[0] / CHART_DPI, CHART_SIZE_PX[1] / CHART_DPI), layout="tight")
        axes.set_title(title, fontsize=11, loc="left")
        axes.spines[["top", "right"]].set_visible(False)
        return fig, axes

    fig, axes = figure("Cost and what it would have cost without the cache (USD per day)")
    width = 0.4
    axes.bar(
        [p - width / 2 for p in positions],
        [float(d["total_cost_usd"] or 0) for d in data.days],
        width,
        label="cost",
        color=COLORS["cost"],
    )
    axes.bar(
        [p + width / 2 for p in positions],
        [float(d["total_potential_cost_usd"] or 0) for d in data.days],
        width,
        label="potential",
        color=COLORS["potential"],
    )
    axes.set_xticks(positions, labels, fontsize=8, rotation=0 if len(labels) <= 14 else 60)
    axes.legend(frameon=False, fontsize=9)
    finish("cost_vs_potential", fig)

    fig, axes = figure("Cache hit rate per day (%)")
    rates = [float(d["cache_hit_rate"]) if d["cache_hit_rate"] is not None else float("nan") for d in data.days]
    axes.plot(positions, rates, marker="o", color=COLORS["line"])
    axes.set_ylim(0, 100)
    axes.set_xticks(positions, labels, fontsize=8, rotation=0 if len(labels) <= 14 else 60)
    finish("hit_rate", fig)

    fig, (by_cost, by_savings) = plt.subplots(
        1, 2, figsize=(CHART_SIZE_PX[0] / CHART_DPI, CHART_SIZE_PX[1] / CHART_DPI), layout="tight"
    )
    for axes, column, title, color in (
        (by_cost, "cost", "Top models by cost (USD)", COLORS["cost"]),
        (by_savings, "savings", "Top models by savings (USD)", COLORS["savings"]),
    ):
        top = sorted(data.models, key=lambda m: (-m[column], m["model"]))[:TOP_MODELS][::-1]
        axes.barh([_chart_label(m["model"]) for m in top], [float(m[column]) for m in top], color=color)
        axes.set_title(title, fontsize=10, loc="left")
        axes.tick_params(axis="y", labelsize=7)
        axes.spines[["top", "right"]].set_visible(False)
    finish("top_models", fig)

    fig, axes = figure("Latency per day (ms)")
    for column, label, color in (("latency_p50_ms", "p50", COLORS["line"]), ("latency_p95_ms", "p95", COLORS["p95"])):
        values = [float(d[column]) if d[column] is not None else float("nan") for d in data.days]
        axes.plot(positions, values, marker="o", label=label, color=color)
    axes.set_ylim(bottom=0)
    axes.set_xticks(positions, labels, fontsize=8, rotation=0 if len(labels) <= 14 else 60)
    axes.legend(frameon=False, fontsize=9)
    finish("latency", fig)

    fig, axes = figure("Requests by provider")
    providers = data.providers.most_common()
    total = sum(n for _, n in providers)
    small = [(p, n) for p, n in providers if n < 0.03 * total]
    if len(small) > 1:  # slivers get one slice, so their labels do not overlap
        providers = [(p, n) for p, n in providers if n >= 0.03 * total] + [("other", sum(n for _, n in small))]
    if providers:
        axes.pie(
            [n for _, n in providers],
            labels=[_chart_label(p) for p, _ in providers],
            autopct="%1.0f%%",
            textprops={"fontsize": 8},
        )
        axes.axis("equal")
    else:
        axes.text(0.5, 0.5, "no requests", ha="center", va="center")
        axes.axis("off")
    finish("providers", fig)
    return charts


# -- HTML, files and email ------------------------------------------------------------------------

CHART_TITLES = {
    "cost_vs_potential": "Cost against potential per day",
    "hit_rate": "Cache hit rate per day",
    "top_models": "Top models by cost and by savings",
    "latency": "Latency p50 / p95 per day",
    "providers": "Provider split",
}


def _chart_label(label: str) -> str:
    """A tenant's label on a chart: visible characters only, at most 28 of them."""
    shown = labels.visible(label)
    return shown if len(shown) <= 28 else shown[:27] + "…"


def _change(current, previous, points: bool = False) -> str:
    if previous is None:
        return "n/a (no traffic before)" if current else "n/a"
    if current is None:
        return "n/a"
    if points:
        return f"{current - previous:+.2f} pts"
    if previous == 0:
        return "n/a (none before)" if current else "0.0%"
    return f"{Decimal(100) * (current - previous) / previous:+.1f}%"


def _figures(data: ReportData) -> list[dict]:
    """The summary table: each figure this period, the period before, and the change."""
    t, p = data.totals, data.previous
    had_traffic = bool(p.requests)
    rows = [
        (
            "requests",
            "Requests",
            t.requests,
            p.requests,
            f"{t.requests:,}",
            f"{p.requests:,}",
            _change(t.requests, p.requests if had_traffic else None),
        ),
        (
            "hit_rate",
            "Cache hit rate",
            t.hit_rate,
            p.hit_rate,
            percent(t.hit_rate),
            percent(p.hit_rate),
            _change(t.hit_rate, p.hit_rate, points=True),
        ),
        (
            "cost",
            "Cost",
            t.cost,
            p.cost,
            money(t.cost),
            money(p.cost),
            _change(t.cost, p.cost if had_traffic else None),
        ),
        (
            "potential",
            "Without the cache",
            t.potential,
            p.potential,
            money(t.potential),
            money(p.potential),
            _change(t.potential, p.potential if had_traffic else None),
        ),
        (
            "savings",
            "Saved by the cache",
            t.savings,
            p.savings,
            money(t.savings),
            money(p.savings),
            _change(t.savings, p.savings if had_traffic else None),
        ),
        (
            "error_rate",
            "Error rate",
            t.error_rate,
            p.error_rate,
            percent(t.error_rate),
            percent(p.error_rate),
            _change(t.error_rate, p.error_rate, points=True),
        ),
        (
            "prompt_cache_savings",
            "Provider prompt caching saved",
            t.prompt_cache_savings,
            p.prompt_cache_savings,
            money(t.prompt_cache_savings),
            money(p.prompt_cache_savings),
            _change(t.prompt_cache_savings, p.prompt_cache_savings if had_traffic else None),
        ),
    ]
    names = ("key", "label", "value", "previous_value", "shown", "previous_shown", "change")
    return [dict(zip(names, row, strict=True)) for row in rows]


def render_html(data: ReportData, image_src: Callable[[str], str]) -> str:
    """The report as one HTML page (autoescaped template); `image_src(name)` is each chart's src."""
    return templating.render(
        "report.html.j2",
        period=data.period,
        period_text=f"{data.period.first_day:%a %d %b %Y} to {data.period.last_day:%a %d %b %Y}",
        project_id=data.project_id,
        time_zone=data.time_zone,
        generated_at=data.generated_at,
        figures=_figures(data),
        forecast=data.forecast,
        charts=list(CHART_TITLES.items()),
        chart_size=CHART_SIZE_PX,
        image_src=image_src,
        days=data.days,
        models=data.models,
        breakdowns=[(BREAKDOWN_TITLES[d], d, rows) for d, rows in data.breakdowns.items()],
        alerts=data.alerts,
    )


BREAKDOWN_TITLES = {"api_key": "Top keys", "end_user": "Top end users"}


def plain_text(data: ReportData) -> str:
    t, p = data.totals, data.previous
    lines = [
        f"Savings report {data.period.label} for project {data.project_id}",
        f"{data.period.first_day} to {data.period.last_day} ({data.time_zone})",
        "",
        f"Requests          {t.requests:,} ({_change(t.requests, p.requests or None)})",
        f"Cache hit rate    {percent(t.hit_rate)} ({_change(t.hit_rate, p.hit_rate, points=True)})",
        f"Cost              {money(t.cost)} ({_change(t.cost, p.cost if p.requests else None)})",
        f"Without the cache {money(t.potential)}",
        f"Saved             {money(t.savings)} ({_change(t.savings, p.savings if p.requests else None)})",
        f"Provider prompt caching saved {money(t.prompt_cache_savings)}",
        f"Error rate        {percent(t.error_rate)} ({t.errors:,} requests)",
    ]
    for dimension, rows in data.breakdowns.items():
        lines.append(
            f"{BREAKDOWN_TITLES[dimension]}: "
            + ", ".join(f"{labels.visible(r['value'])} {money(r['cost'])}" for r in rows[:3])
        )
    if data.forecast:
        lines.append(f"Forecast {data.forecast['month']:%Y-%m}: {money(data.forecast['forecast'])}")
    lines.append(f"Alerts: {len(data.alerts)}")
    return "\n".join(lines) + "\n"


def write(data: ReportData, out_dir: Path) -> Path:
    """report.html (charts inlined as data URIs) and one PNG per chart in out_dir; returns the HTML path."""
    charts = render_charts(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, png in charts.items():
        (out_dir / f"{name}.png").write_bytes(png)
    page = render_html(data, lambda name: "data:image/png;base64," + base64.b64encode(charts[name]).decode())
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def email(data: ReportData, recipients: list[str], charts: dict[str, bytes] | None = None) -> EmailMessage:
    """A multipart email: plain text, and HTML whose charts are inline images (cid:), not data URIs.
    Every recipient must be a plain address (UserError otherwise): none can add a header."""
    recipients = list(parse_addresses(",".join(recipients), "the report's recipients"))
    charts = charts or render_charts(data)
    ids = {name: make_msgid(domain="watchllm") for name in charts}
    message = EmailMessage()
    message["Subject"] = (
        f"Savings report {data.period.label}: {money(data.totals.cost)} spent, "
        f"{money(data.totals.savings)} saved (project {data.project_id})"
    )
    message["From"] = settings.email_from()
    message["To"] = ", ".join(recipients)
    message.set_content(plain_text(data))
    message.add_alternative(render_html(data, lambda name: "cid:" + ids[name][1:-1]), subtype="html")
    html_part = message.get_payload()[1]
    for name, png in charts.items():
        html_part.add_related(png, maintype="image", subtype="png", cid=ids[name], filename=f"{name}.png")
    return message


def default_out_dir(project_id: uuid.UUID, period: Period) -> Path:
    return settings.reports_dir() / str(project_id) / period.label.replace(" ", "-")


# -- every project's weekly report ----------------------------------------------------------------

ACTIVE_PROJECTS_SQL = """
select daily.project_id, sum(daily.total_requests) as requests
from {daily} as daily
where daily.date between %s and %s
group by daily.project_id
order by requests desc, daily.project_id
"""


@dataclass
class WeeklyOutcome:
    """What a run of every project's report did; `failures` name the project and what went wrong."""

    period: Period
    directory: Path
    rendered: int = 0
    sent: int = 0
    already_sent: int = 0
    failures: list[str] = field(default_factory=list)
    preview: tuple[ReportData, Path] | None = None  # the busiest project's


def _report_recipients(cur) -> dict[uuid.UUID, str]:
    """project -> its report_email_to as written (checked when used, per project)."""
    has_column = cur.execute(
        "select 1 from information_schema.columns where table_schema = %s and table_name = 'project_settings'"
        " and column_name = 'report_email_to'",
        (settings.analytics_schema(),),
    ).fetchone()
    if not has_column:
        return {}
    rows = cur.execute(
        sql.SQL("select project_id, report_email_to from {} where report_email_to is not null").format(
            sql.Identifier(settings.analytics_schema(), "project_settings")
        )
    )
    return dict(rows.fetchall())


def weekly_reports(cur, period: Period, log: Callable[[str], None] = lambda line: None) -> WeeklyOutcome:
    """Render every active project's report of `period` and email it where the project asks for it.

    `cur` must be on an autocommit connection. Each project is rendered and sent on its own: a
    failure is recorded in the outcome and the next project goes on. A sent report is recorded in
    analytics.report_deliveries, so running it again (a retry) sends only what is missing."""
    from orchestration.core import bookkeeping, delivery

    outcome = WeeklyOutcome(period=period, directory=settings.reports_dir() / "weekly" / period.label)
    smtp = settings.smtp_url()
    bookkeeping.ensure(cur, bookkeeping.REPORT_TABLES)
    sent_table = bookkeeping.relation("report_deliveries")
    daily = sql.Identifier(settings.analytics_schema(), "usage_aggregations_daily")
    projects = [
        project
        for project, _ in cur.execute(
            sql.SQL(ACTIVE_PROJECTS_SQL).format(daily=daily), (period.first_day, period.last_day)
        ).fetchall()
    ]
    recipients = _report_recipients(cur)
    already = {
        project
        for (project,) in cur.execute(
            sql.SQL("select project_id from {} where period = %s").format(sent_table), (period.label,)
        )
    }
    with delivery.Mailer(smtp) if smtp else contextlib.nullcontext() as mailer:
        for project in projects:
            try:
                data = gather(cur, project, period, reporting_time_zone(cur, project))
                path = write(data, outcome.directory / str(project))
                outcome.rendered += 1
                if outcome.preview is None:
                    outcome.preview = (data, path)
                if project not in recipients:
                    continue
                if project in already:
                    outcome.already_sent += 1
                    continue
                to = parse_addresses(recipients[project], f"project_settings.report_email_to of {project}")
                if not to:
                    continue
                if not smtp:
                    raise UserError("WATCHLLM_SMTP_URL is not set")
                mailer.send(email(data, list(to)))
                cur.execute(
                    sql.SQL(
                        "insert into {} (project_id, period, recipients) values (%s, %s, %s) on conflict do nothing"
                    ).format(sent_table),
                    (project, period.label, ", ".join(to)),
                )
                outcome.sent += 1
            except Exception as exc:  # noqa: BLE001 (one project's failure is its own)
                reason = (
                    str(exc) if isinstance(exc, UserError | delivery.DeliveryError) else f"{type(exc).__name__}: {exc}"
                )
                outcome.failures.append(f"{project}: {labels.visible(reason)}")
                log(f"report of {project} not done: {labels.visible(reason)}")
    return outcome
