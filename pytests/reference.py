"""An independent, plain-Python computation of every contract output, from raw rows and the seed CSV.

It shares no code with the dbt models: it re-reads the rules of docs/contract.md and applies them row by
row with Decimal, so a test comparing the two fails when either drifts from the contract.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

UTC = dt.UTC
PERCENTILES = (50, 95, 99)
PERCENTILE_COLUMNS = tuple(f"latency_p{p}_ms" for p in PERCENTILES)


def within_sketch_bound(reported, exact) -> bool:
    """The sketch's guarantee (docs/contract.md, section 8): |reported - exact| <= max(1 ms, 1% of exact)."""
    if reported is None or exact is None:
        return reported is None and exact is None
    return abs(Decimal(reported) - Decimal(exact)) <= max(Decimal(1), Decimal(exact) / 100)


WHITESPACE = " \t\n\r\f\v"
MAX_LABEL_LENGTH = 256  # a longer provider or model (as logged) is quarantined
MICRO = Decimal("0.000001")
# Postgres numeric is exact; Python's default Decimal context keeps 28 significant digits, which
# sums and ratios of extreme rows exceed. Every computation here runs with this many instead.
EXACT_DIGITS = 200


def exact(function):
    """Run `function` with Decimal arithmetic at EXACT_DIGITS significant digits."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with localcontext(prec=EXACT_DIGITS):
            return function(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class Price:
    provider: str
    model: str
    pattern: str | None
    input_per_1m: Decimal
    output_per_1m: Decimal
    valid_from: dt.date
    valid_to: dt.date | None

    def covers(self, day: dt.date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)


def load_prices(path: Path) -> list[Price]:
    with path.open(newline="") as handle:
        return [
            Price(
                provider=row["provider"].strip(WHITESPACE).lower(),
                model=row["model"].strip(WHITESPACE).lower(),
                pattern=(row.get("model_pattern") or "").strip(WHITESPACE) or None,
                input_per_1m=Decimal(row["input_usd_per_1m"]),
                output_per_1m=Decimal(row["output_usd_per_1m"]),
                valid_from=dt.date.fromisoformat(row["valid_from"]),
                valid_to=dt.date.fromisoformat(row["valid_to"]) if row.get("valid_to") else None,
            )
            for row in csv.DictReader(handle)
            # a period's standard prices below any threshold: the rule without token classes
            if (row.get("service_tier") or "standard").strip().lower() == "standard"
            and int(row.get("above_input_tokens") or 0) == 0
        ]


@exact
def round2(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def name(value: str | None) -> str:
    if value is None or value.strip(WHITESPACE) == "":
        return "unknown"
    return value.strip(WHITESPACE).lower()


def rejection_reason(row: dict, now: dt.datetime) -> str | None:
    reasons = []
    if row["project_id"] is None:
        reasons.append("project_id is null")
    if row["created_at"] is None:
        reasons.append("created_at is null")
    elif row["created_at"] > now + dt.timedelta(minutes=5):
        reasons.append("created_at is more than 5 minutes in the future")
    if row["tokens_input"] is not None and row["tokens_input"] < 0:
        reasons.append("tokens_input is negative")
    if row["tokens_output"] is not None and row["tokens_output"] < 0:
        reasons.append("tokens_output is negative")
    if row["cost_usd"] is not None and row["cost_usd"] < 0:
        reasons.append("cost_usd is negative")
    if row["potential_cost_usd"] is not None and row["potential_cost_usd"] < 0:
        reasons.append("potential_cost_usd is negative")
    for label in ("provider", "model"):
        if len(row[label] or "") > MAX_LABEL_LENGTH:
            reasons.append(f"{label} is longer than {MAX_LABEL_LENGTH} characters")
    if any(column in row for column in CLASS_COLUMNS):  # usage_logs has token classes (section 14)
        counts = {column: row.get(column) or 0 for column in CLASS_COLUMNS}
        reasons += [f"{column} is negative" for column, count in counts.items() if count < 0]
        cache = counts["tokens_cache_read"] + counts["tokens_cache_write"] + counts["tokens_cache_write_1h"]
        if cache > (row["tokens_input"] or 0):
            reasons.append("tokens_cache_read + tokens_cache_write + tokens_cache_write_1h exceed tokens_input")
        if counts["tokens_reasoning"] > (row["tokens_output"] or 0):
            reasons.append("tokens_reasoning exceeds tokens_output")
    for column in ("api_key_id", "end_user"):  # who spent it (section 15), where usage_logs has the column
        if column in row and len(trimmed_label(row[column]) or "") > MAX_LABEL_LENGTH:
            reasons.append(f"{column} is longer than {MAX_LABEL_LENGTH} characters")
    if "tags" in row:
        tags = request_tags(row["tags"])
        if any(len(tag) > MAX_LABEL_LENGTH for tag in tags):
            reasons.append(f"a tag is longer than {MAX_LABEL_LENGTH} characters")
        if len(tags) > MAX_TAGS:
            reasons.append(f"tags has more than {MAX_TAGS} distinct values")
    return "; ".join(reasons) or None


MAX_TAGS = 32
NO_LABEL = "(none)"


def trimmed_label(value) -> str | None:
    """A key or end user as the breakdown keys it: trimmed, case kept, None when blank."""
    if value is None:
        return None
    return str(value).strip(WHITESPACE) or None


def request_tags(value) -> tuple[str, ...]:
    """A request's distinct tags, trimmed, blanks dropped (a text array, or a JSON array as text)."""
    if value is None:
        return ()
    if isinstance(value, str):
        import json

        value = json.loads(value)
    return tuple(sorted({tag for tag in (trimmed_label(item) for item in value if item is not None) if tag}))


CLASS_COLUMNS = ("tokens_cache_read", "tokens_cache_write", "tokens_cache_write_1h", "tokens_reasoning")
SERVICE_TIERS = ("batch", "flex", "priority")  # any other value, NULL or blank is standard


def service_tier(value: str | None) -> str:
    tier = (value or "").strip(WHITESPACE).lower()
    return tier if tier in SERVICE_TIERS else "standard"


@dataclass(frozen=True)
class ClassPrice:
    """A request's price by token class (section 14): its list price and what prompt caching saved."""

    priced: Decimal
    prompt_cache_savings: Decimal


@dataclass
class Request:
    project_id: object
    created_at: dt.datetime
    provider: str
    model: str
    tokens_input: int
    tokens_output: int
    cached: bool
    latency_ms: int | None
    cost: Decimal | None
    potential: Decimal | None
    tokens_cache_read: int = 0
    tokens_cache_write: int = 0  # both write classes
    tokens_reasoning: int = 0
    prompt_cache_savings: Decimal | None = Decimal(0)
    is_error: bool = False
    # dimension -> the values the request counts under (section 15); empty without the columns
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def savings(self) -> Decimal | None:
        return None if self.cost is None or self.potential is None else self.potential - self.cost

    @property
    def unpriced(self) -> bool:
        return self.cost is None or self.potential is None

    @property
    def hour(self) -> dt.datetime:
        return self.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)

    @property
    def day(self) -> dt.date:
        return self.created_at.astimezone(UTC).date()


def list_price(prices: list[Price], provider: str, model: str, day: dt.date, tin: int, tout: int) -> Decimal | None:
    exact = [p for p in prices if p.provider == provider and p.model == model and p.covers(day)]
    if not exact:
        exact = [
            p
            for p in prices
            if p.provider == provider and p.pattern and re.search(p.pattern, model, re.IGNORECASE) and p.covers(day)
        ]
    if not exact:
        return None
    assert len(exact) == 1, f"ambiguous price for {provider}/{model} on {day}"
    price = exact[0]
    return (tin * price.input_per_1m + tout * price.output_per_1m) * MICRO


@exact
def effective(row: dict, prices: list[Price], class_prices=None) -> Request:
    """One kept request's figures. `class_prices(provider, model, day, row)` prices a row of a
    usage_logs with token classes (a ClassPrice, or None when unpriced)."""
    provider, model = name(row["provider"]), name(row["model"])
    tin, tout = row["tokens_input"] or 0, row["tokens_output"] or 0
    cached = bool(row["cached"])
    day = row["created_at"].astimezone(UTC).date()
    classes = {column: row.get(column) or 0 for column in CLASS_COLUMNS}
    if class_prices is not None:
        by_class = class_prices(provider, model, day, row)
        priced = by_class.priced if by_class else None
        served_cache = classes["tokens_cache_read"] + classes["tokens_cache_write"] + classes["tokens_cache_write_1h"]
        if cached or served_cache == 0:
            prompt_cache_savings = Decimal(0)
        else:
            prompt_cache_savings = by_class.prompt_cache_savings if by_class else None
    else:
        priced = list_price(prices, provider, model, day, tin, tout)
        prompt_cache_savings = Decimal(0)
    recorded_cost, recorded_potential = row["cost_usd"], row["potential_cost_usd"]
    if cached:
        cost = recorded_cost if recorded_cost is not None else Decimal(0)
        potential = recorded_potential if recorded_potential is not None and recorded_potential > 0 else priced
    else:
        cost = recorded_cost if recorded_cost is not None else priced
        potential = cost
    latency = row["latency_ms"] if row["latency_ms"] is not None and row["latency_ms"] >= 0 else None
    return Request(
        row["project_id"],
        row["created_at"],
        provider,
        model,
        tin,
        tout,
        cached,
        latency,
        cost,
        potential,
        classes["tokens_cache_read"],
        classes["tokens_cache_write"] + classes["tokens_cache_write_1h"],
        classes["tokens_reasoning"],
        prompt_cache_savings,
        row.get("status_code") is not None and row["status_code"] >= 400,
        request_labels(row),
    )


def request_labels(row: dict) -> dict[str, tuple[str, ...]]:
    labels = {}
    for dimension, column in (("api_key", "api_key_id"), ("end_user", "end_user")):
        if column in row:
            labels[dimension] = (trimmed_label(row[column]) or NO_LABEL,)
    if "tags" in row:
        labels["tag"] = request_tags(row["tags"]) or (NO_LABEL,)
    return labels


@dataclass
class Bucket:
    total_requests: int = 0
    cached_requests: int = 0
    tokens_input: int = 0
    tokens_output: int = 0
    total_cost_usd: Decimal | None = None
    total_potential_cost_usd: Decimal | None = None
    total_savings_usd: Decimal | None = None
    latency_sum: int = 0
    latency_count: int = 0
    unpriced_requests: int = 0
    requests_by_provider: dict[str, int] = field(default_factory=dict)
    requests_by_model: dict[str, int] = field(default_factory=dict)
    cached_tokens_input: int = 0
    cached_tokens_output: int = 0
    tokens_cache_read: int = 0
    tokens_cache_write: int = 0
    tokens_reasoning: int = 0
    prompt_cache_savings_usd: Decimal | None = None
    latencies: list[int] = field(default_factory=list)
    error_requests: int = 0
    members: list = field(default_factory=list)  # the requests, for a breakdown's (other)

    def add(self, r: Request) -> None:
        self.members.append(r)
        self.total_requests += 1
        self.cached_requests += int(r.cached)
        self.error_requests += int(r.is_error)
        self.tokens_input += r.tokens_input
        self.tokens_output += r.tokens_output
        if r.cached:
            self.cached_tokens_input += r.tokens_input
            self.cached_tokens_output += r.tokens_output
        self.total_cost_usd = _add(self.total_cost_usd, r.cost)
        self.total_potential_cost_usd = _add(self.total_potential_cost_usd, r.potential)
        self.total_savings_usd = _add(self.total_savings_usd, r.savings)
        self.tokens_cache_read += r.tokens_cache_read
        self.tokens_cache_write += r.tokens_cache_write
        self.tokens_reasoning += r.tokens_reasoning
        self.prompt_cache_savings_usd = _add(self.prompt_cache_savings_usd, r.prompt_cache_savings)
        if r.latency_ms is not None:
            self.latency_sum += r.latency_ms
            self.latency_count += 1
            self.latencies.append(r.latency_ms)
        self.unpriced_requests += int(r.unpriced)
        self.requests_by_provider[r.provider] = self.requests_by_provider.get(r.provider, 0) + 1
        self.requests_by_model[r.model] = self.requests_by_model.get(r.model, 0) + 1

    def usage_row(self) -> dict:
        return {
            "total_requests": self.total_requests,
            "cached_requests": self.cached_requests,
            "cache_hit_rate": round2(Decimal(100 * self.cached_requests) / self.total_requests),
            "tokens_input": self.tokens_input,
            "tokens_output": self.tokens_output,
            "total_tokens": self.tokens_input + self.tokens_output,
            "total_cost_usd": self.total_cost_usd,
            "total_potential_cost_usd": self.total_potential_cost_usd,
            "total_savings_usd": self.total_savings_usd,
            "avg_latency_ms": round2(Decimal(self.latency_sum) / self.latency_count) if self.latency_count else None,
            "requests_by_provider": self.requests_by_provider,
            "requests_by_model": self.requests_by_model,
            "unpriced_requests": self.unpriced_requests,
            "cached_tokens_input": self.cached_tokens_input,
            "cached_tokens_output": self.cached_tokens_output,
            **self.class_columns(),
            **self.percentiles(),
            **self.error_columns(),
        }

    def error_columns(self) -> dict:
        return {
            "error_requests": self.error_requests,
            "error_rate": round2(Decimal(100 * self.error_requests) / self.total_requests),
        }

    def breakdown_row(self) -> dict:
        usage = self.usage_row()
        return {
            column: usage[column]
            for column in (
                "total_requests", "cached_requests", "cache_hit_rate", "error_requests", "error_rate",
                "total_tokens", "total_cost_usd", "total_potential_cost_usd", "total_savings_usd",
                "prompt_cache_savings_usd", "unpriced_requests", *PERCENTILE_COLUMNS,
            )
        }  # fmt: skip

    def dimension_row(self) -> dict:
        """usage_by_dimension_daily: the per-model columns, the hit rate and the errors."""
        return {**self.model_row(), "cache_hit_rate": self.usage_row()["cache_hit_rate"]}

    def class_columns(self) -> dict:
        return {
            "tokens_cache_read": self.tokens_cache_read,
            "tokens_cache_write": self.tokens_cache_write,
            "tokens_reasoning": self.tokens_reasoning,
            "prompt_cache_savings_usd": self.prompt_cache_savings_usd,
        }

    def percentiles(self) -> dict:
        """The exact nearest-rank percentiles of the known latencies (percentile_disc), or None."""
        ordered = sorted(self.latencies)
        return {
            f"latency_p{p}_ms": ordered[max(1, math.ceil(p * len(ordered) / 100)) - 1] if ordered else None
            for p in PERCENTILES
        }

    def model_row(self) -> dict:
        return {
            "total_requests": self.total_requests,
            "cached_requests": self.cached_requests,
            "tokens_input": self.tokens_input,
            "tokens_output": self.tokens_output,
            "total_cost_usd": self.total_cost_usd,
            "total_potential_cost_usd": self.total_potential_cost_usd,
            "total_savings_usd": self.total_savings_usd,
            "unpriced_requests": self.unpriced_requests,
            "latency_sum_ms": self.latency_sum if self.latency_count else None,
            "latency_count": self.latency_count,
            "cached_tokens_input": self.cached_tokens_input,
            "cached_tokens_output": self.cached_tokens_output,
            **self.class_columns(),
            **self.percentiles(),
            **self.error_columns(),
        }

    def monthly_row(self) -> dict:
        potential = self.total_potential_cost_usd
        return {
            "total_requests": self.total_requests,
            "cached_requests": self.cached_requests,
            "cache_hit_rate": round2(Decimal(100 * self.cached_requests) / self.total_requests),
            "total_cost_usd": self.total_cost_usd,
            "total_potential_cost_usd": potential,
            "total_savings_usd": self.total_savings_usd,
            "savings_pct": round2(100 * self.total_savings_usd / potential)
            if potential and self.total_savings_usd is not None
            else None,
        }


def _add(total: Decimal | None, value: Decimal | None) -> Decimal | None:
    if value is None:
        return total
    return value if total is None else total + value


@dataclass
class Reference:
    rejected: dict[object, str]
    hourly: dict[tuple, dict]
    daily: dict[tuple, dict]
    by_model_daily: dict[tuple, dict]
    monthly: dict[tuple, dict]
    requests: list[Request]
    by_dimension_daily: dict[tuple, dict] = field(default_factory=dict)

    @exact
    def breakdown(self, project_id, dimension: str, days: int, zone: str, now: dt.datetime, limit: int) -> list[dict]:
        """get_usage_breakdown: the top `limit` values by cost over the zone's last `days` days, then
        (other) for keys and users; in the function's order."""
        from zoneinfo import ZoneInfo

        local = ZoneInfo(zone)
        today = now.astimezone(local).date()
        first = today - dt.timedelta(days=days - 1)
        buckets: dict[str, Bucket] = defaultdict(Bucket)
        for r in self.requests:
            local_day = r.created_at.astimezone(local).date()
            if r.project_id == project_id and dimension in r.labels and first <= local_day <= today:
                for value in r.labels[dimension]:
                    buckets[value].add(r)
        def by_cost(item):
            return (item[1].total_cost_usd is None, -(item[1].total_cost_usd or 0), -item[1].total_requests, item[0])

        ranked = sorted(buckets.items(), key=by_cost)
        if dimension != "tag" and len(ranked) > limit:
            other = Bucket()
            for _, bucket in ranked[limit:]:
                for r in bucket.members:
                    other.add(r)
            ranked = [*ranked[:limit], ("(other)", other)]
        return [{"value": value, **bucket.breakdown_row()} for value, bucket in ranked]

    @exact
    def local_dashboard(self, project_id, days: int, zone: str, now: dt.datetime) -> list[dict]:
        """get_dashboard_stats(project, days, zone): the same figures per calendar day of `zone`."""
        from zoneinfo import ZoneInfo

        local = ZoneInfo(zone)
        buckets: dict[dt.date, Bucket] = defaultdict(Bucket)
        for r in self.requests:
            if r.project_id == project_id:
                buckets[r.created_at.astimezone(local).date()].add(r)
        today = now.astimezone(local).date()
        return self.dashboard(project_id, days, today, {(project_id, d): b.usage_row() for d, b in buckets.items()})

    def dashboard(self, project_id, days: int, today: dt.date, daily: dict | None = None) -> list[dict]:
        daily = self.daily if daily is None else daily
        rows = []
        for offset in range(days - 1, -1, -1):
            day = today - dt.timedelta(days=offset)
            found = daily.get((project_id, day))
            if found is None:
                rows.append(
                    {
                        "date": day,
                        "total_requests": 0,
                        "cached_requests": 0,
                        "cache_hit_rate": None,
                        "total_tokens": 0,
                        "total_cost_usd": Decimal(0),
                        "total_potential_cost_usd": Decimal(0),
                        "total_savings_usd": Decimal(0),
                        "avg_latency_ms": None,
                        "requests_by_provider": {},
                        "requests_by_model": {},
                        **{column: None for column in PERCENTILE_COLUMNS},
                        "tokens_cache_read": 0,
                        "tokens_cache_write": 0,
                        "tokens_reasoning": 0,
                        "prompt_cache_savings_usd": Decimal(0),
                        "error_requests": 0,
                        "error_rate": None,
                    }
                )
            else:
                rows.append(
                    {
                        "date": day,
                        **{
                            k: v
                            for k, v in found.items()
                            if k
                            not in (
                                "tokens_input",
                                "tokens_output",
                                "unpriced_requests",
                                "cached_tokens_input",
                                "cached_tokens_output",
                            )
                        },
                    }
                )
        return rows


@exact
def compute(raw_rows: list[dict], prices: list[Price], now: dt.datetime, class_prices=None) -> Reference:
    rejected: dict[object, str] = {}
    requests: list[Request] = []
    for row in raw_rows:
        reason = rejection_reason(row, now)
        if reason:
            rejected[row["id"]] = reason
        else:
            requests.append(effective(row, prices, class_prices))

    hourly: dict[tuple, Bucket] = defaultdict(Bucket)
    daily: dict[tuple, Bucket] = defaultdict(Bucket)
    by_model: dict[tuple, Bucket] = defaultdict(Bucket)
    monthly: dict[tuple, Bucket] = defaultdict(Bucket)
    by_dimension: dict[tuple, Bucket] = defaultdict(Bucket)
    for r in requests:
        for dimension, values in r.labels.items():
            for value in values:
                by_dimension[(r.project_id, r.day, dimension, value)].add(r)
        hourly[(r.project_id, r.hour)].add(r)
        daily[(r.project_id, r.day)].add(r)
        by_model[(r.project_id, r.day, r.provider, r.model)].add(r)
        monthly[(r.project_id, r.day.replace(day=1))].add(r)
    return Reference(
        rejected=rejected,
        hourly={k: b.usage_row() for k, b in hourly.items()},
        daily={k: b.usage_row() for k, b in daily.items()},
        by_model_daily={k: b.model_row() for k, b in by_model.items()},
        monthly={k: b.monthly_row() for k, b in monthly.items()},
        requests=requests,
        by_dimension_daily={k: b.dimension_row() for k, b in by_dimension.items()},
    )


@exact
def counterfactual(requests: list[Request], prices: list[Price], extra: tuple[tuple[str, str], ...] = ()) -> dict:
    """model_cost_counterfactual_monthly: every project-month against every candidate, request by request."""
    exact_names = {(p.provider, p.model) for p in prices if p.pattern is None}
    months: dict[dt.date, list[Request]] = defaultdict(list)
    for r in requests:
        months[r.day.replace(day=1)].append(r)
    out = {}
    for month, month_requests in months.items():
        candidates = {(r.provider, r.model) for r in month_requests if (r.provider, r.model) in exact_names} | set(
            extra
        )
        by_project: dict[object, list[Request]] = defaultdict(list)
        for r in month_requests:
            by_project[r.project_id].append(r)
        for project, project_requests in by_project.items():
            for provider, model in candidates:
                row = {
                    "total_requests": len(project_requests),
                    "priced_requests": 0,
                    "tokens_input": 0,
                    "tokens_output": 0,
                    "actual_cost_usd": None,
                    "counterfactual_cost_usd": None,
                    "counterfactual_potential_cost_usd": None,
                }
                for r in project_requests:
                    price = [
                        p
                        for p in prices
                        if p.pattern is None and (p.provider, p.model) == (provider, model) and p.covers(r.day)
                    ]
                    if not price:
                        continue
                    listed = (r.tokens_input * price[0].input_per_1m + r.tokens_output * price[0].output_per_1m) * MICRO
                    row["priced_requests"] += 1
                    row["tokens_input"] += r.tokens_input
                    row["tokens_output"] += r.tokens_output
                    row["actual_cost_usd"] = _add(row["actual_cost_usd"], r.cost)
                    row["counterfactual_cost_usd"] = _add(
                        row["counterfactual_cost_usd"], Decimal(0) if r.cached else listed
                    )
                    row["counterfactual_potential_cost_usd"] = _add(row["counterfactual_potential_cost_usd"], listed)
                cost, actual = row["counterfactual_cost_usd"], row["actual_cost_usd"]
                row["difference_usd"] = None if cost is None or actual is None else cost - actual
                out[(project, month, provider, model)] = row
    return out
