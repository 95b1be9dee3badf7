"""`pricing import`: fold a LiteLLM price list into seeds/model_pricing.csv as effective-dated periods.

A price period is one row per service tier and side of the prompt-size threshold the list states
(docs/pricing.md): the standard tier below the threshold always, then `batch`, `flex` and
`priority`, and the same above the threshold for a model billed by prompt size.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from orchestration.core.errors import UserError

# The token classes of docs/contract.md section 14, as seed columns, with LiteLLM's name for each.
PRICE_CLASSES: dict[str, str] = {
    "input_usd_per_1m": "input_cost_per_token",
    "output_usd_per_1m": "output_cost_per_token",
    "cache_read_usd_per_1m": "cache_read_input_token_cost",
    "cache_write_usd_per_1m": "cache_creation_input_token_cost",
    "cache_write_1h_usd_per_1m": "cache_creation_input_token_cost_above_1hr",
    "reasoning_usd_per_1m": "output_cost_per_reasoning_token",
}
SERVICE_TIERS = ("standard", "batch", "flex", "priority")
# LiteLLM's suffix for a tier's price: `input_cost_per_token_batches`, `..._flex`, `..._priority`.
LITELLM_TIER_SUFFIXES = {"batches": "batch", "flex": "flex", "priority": "priority"}

SEED_COLUMNS = (
    "provider",
    "model",
    "service_tier",
    "above_input_tokens",
    *PRICE_CLASSES,
    "valid_from",
    "valid_to",
    "model_pattern",
    "source",
)

# <class>[_above_<N>k_tokens][_<tier>]; the longer class name first, so that the 1-hour cache write
# is not read as a cache write with a suffix.
_LITELLM_PRICE_KEY = re.compile(
    "^(?P<cls>"
    + "|".join(sorted(map(re.escape, PRICE_CLASSES.values()), key=len, reverse=True))
    + r")(?:_above_(?P<thousands>\d+)k_tokens)?(?:_(?P<tier>"
    + "|".join(LITELLM_TIER_SUFFIXES)
    + "))?$"
)
_CLASS_BY_LITELLM_NAME = {name: column for column, name in PRICE_CLASSES.items()}

# LiteLLM's provider name -> the proxy's provider name. Earlier entries win when two LiteLLM
# providers list the same model (Google AI Studio's `gemini/...` over Vertex AI's copy).
LITELLM_PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "vertex_ai-language-models": "google",
    "groq": "groq",
    "mistral": "mistral",
    "deepseek": "deepseek",
}
# Only these LiteLLM modes are requests the proxy logs with input/output tokens.
PRICED_MODES = {"chat"}

ONE_MILLION = Decimal(1_000_000)

# (service_tier, above_input_tokens) -> {price column: per-1M price}: one price period's prices.
PriceSheet = dict[tuple[str, int], dict[str, str]]


@dataclass
class ImportSummary:
    added: int = 0
    repriced: int = 0
    unchanged: int = 0
    skipped: int = 0

    def __str__(self) -> str:
        return (
            f"{self.added} models added, {self.repriced} repriced (old period closed), "
            f"{self.unchanged} unchanged, {self.skipped} entries skipped"
        )


def per_million(per_token: Decimal | int | float | None) -> str | None:
    """A LiteLLM per-token price as an exact per-1M-token decimal string."""
    if per_token is None or isinstance(per_token, bool) or not isinstance(per_token, (Decimal, int, float)):
        return None
    value = Decimal(str(per_token)) * ONE_MILLION
    text = format(value.normalize(), "f")
    return "0" if Decimal(text) == 0 else text


def price_sheet(entry: dict) -> PriceSheet:
    """Every class, tier and threshold price a LiteLLM entry states, per 1M tokens.

    A model has at most one threshold; should an entry state two, the lowest is kept.
    """
    stated: dict[tuple[str, int], dict[str, str]] = {}
    for key, value in entry.items():
        match = _LITELLM_PRICE_KEY.match(key)
        price = per_million(value) if match else None
        if price is None:
            continue
        tier = LITELLM_TIER_SUFFIXES.get(match["tier"] or "", "standard")
        above = int(match["thousands"]) * 1000 if match["thousands"] else 0
        stated.setdefault((tier, above), {})[_CLASS_BY_LITELLM_NAME[match["cls"]]] = price
    thresholds = sorted({above for _, above in stated if above})
    return {(tier, above): prices for (tier, above), prices in stated.items() if above in (0, *thresholds[:1])}


def read_litellm(path: Path) -> dict[tuple[str, str], tuple[str, PriceSheet]]:
    """(provider, model) -> (LiteLLM key, price sheet), for the chat models of the proxy's providers."""
    if not path.is_file():
        raise UserError(f"price list {path} does not exist: pass a LiteLLM model_prices JSON file")
    try:
        raw = json.loads(path.read_text(), parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise UserError(f"price list {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(raw, dict):
        raise UserError(f"price list {path} is not a LiteLLM price map (expected a JSON object)")

    rank = {name: i for i, name in enumerate(LITELLM_PROVIDERS)}
    chosen: dict[tuple[str, str], tuple[int, str, PriceSheet]] = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict) or entry.get("mode") not in PRICED_MODES:
            continue
        litellm_provider = entry.get("litellm_provider")
        if litellm_provider not in LITELLM_PROVIDERS:
            continue
        sheet = price_sheet(entry)
        standard = sheet.get(("standard", 0), {})
        if "input_usd_per_1m" not in standard or "output_usd_per_1m" not in standard:
            continue
        model = key.split("/", 1)[1] if "/" in key else key
        ident = (LITELLM_PROVIDERS[litellm_provider], model.strip().lower())
        if ident not in chosen or rank[litellm_provider] < chosen[ident][0]:
            chosen[ident] = (rank[litellm_provider], key, sheet)
    return {ident: (key, sheet) for ident, (_, key, sheet) in chosen.items()}


def _normalised(row: dict[str, str]) -> dict[str, str]:
    """A seed row with every column, a blank tier as `standard` and a blank side as 0 (below)."""
    row = {col: (row.get(col) or "").strip() for col in SEED_COLUMNS}
    row["service_tier"] = row["service_tier"].lower() or "standard"
    row["above_input_tokens"] = row["above_input_tokens"] or "0"
    return row


def read_seed(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [_normalised(row) for row in csv.DictReader(handle)]


def standard_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The row of each period that prices the standard tier below any threshold."""
    return [r for r in rows if r["service_tier"] == "standard" and int(r["above_input_tokens"]) == 0]


def _row_order(row: dict[str, str]) -> tuple:
    tier = SERVICE_TIERS.index(row["service_tier"]) if row["service_tier"] in SERVICE_TIERS else len(SERVICE_TIERS)
    return (
        row["provider"],
        row["model"],
        row["model_pattern"],
        row["valid_from"],
        tier,
        row["service_tier"],
        int(row["above_input_tokens"]),
    )


def write_seed(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SEED_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(rows, key=_row_order))


def _sheet_of(rows: list[dict[str, str]]) -> PriceSheet:
    return {(r["service_tier"], int(r["above_input_tokens"])): {c: r[c] for c in PRICE_CLASSES if r[c]} for r in rows}


def _exact(sheet: PriceSheet) -> dict[tuple[str, int], dict[str, Decimal]]:
    return {side: {c: Decimal(p) for c, p in prices.items()} for side, prices in sheet.items()}


def _merged(current: PriceSheet, listed: PriceSheet) -> PriceSheet:
    """The list's prices for every tier and side it states; the current period's for the others.

    A list that leaves out a tier (an older LiteLLM release without batch prices, say) does not end
    it. A threshold the list states replaces the current one.
    """
    listed_thresholds = {above for _, above in listed if above}
    kept = {
        side: prices
        for side, prices in current.items()
        if side not in listed and not (listed_thresholds and side[1] and side[1] not in listed_thresholds)
    }
    return {**kept, **listed}


def _period_rows(provider: str, model: str, sheet: PriceSheet, valid_from: str, source: str) -> list[dict[str, str]]:
    return [
        {
            "provider": provider,
            "model": model,
            "service_tier": tier,
            "above_input_tokens": str(above),
            **{col: prices.get(col, "") for col in PRICE_CLASSES},
            "valid_from": valid_from,
            "valid_to": "",
            "model_pattern": "",
            "source": source,
        }
        for (tier, above), prices in sheet.items()
    ]


def import_price_list(price_list: Path, seed: Path, as_of: dt.date, source: str | None = None) -> ImportSummary:
    """Update the seed from a price list observed on `as_of`.

    A period whose prices changed in any class, tier or threshold the list states is closed
    (valid_to = as_of) and a new one opens, with the list's prices and the closed period's for the
    tiers the list leaves out; a model not yet in the seed gets a period starting at as_of; nothing
    is ever deleted.
    """
    prices_by_model = read_litellm(price_list)
    rows = read_seed(seed)
    label = source or price_list.name
    summary = ImportSummary()
    as_of_text = as_of.isoformat()

    periods: dict[tuple[str, str], dict[str, list[dict[str, str]]]] = {}
    for row in rows:
        if not row["model_pattern"]:
            periods.setdefault((row["provider"], row["model"]), {}).setdefault(row["valid_from"], []).append(row)

    for (provider, model), (litellm_key, sheet) in sorted(prices_by_model.items()):
        by_start = periods.get((provider, model), {})
        open_start = next((start for start, period in by_start.items() if not period[0]["valid_to"]), None)
        latest_end = max((p[0]["valid_to"] for p in by_start.values() if p[0]["valid_to"]), default="")
        if open_start is not None and open_start > as_of_text:
            raise UserError(
                f"{provider}/{model} already has a period from {open_start}, after "
                f"--as-of {as_of_text}: import price lists oldest first"
            )
        listed = sheet
        if open_start is not None:
            current = _sheet_of(by_start[open_start])
            sheet = _merged(current, listed)
            if _exact(sheet) == _exact(current):
                summary.unchanged += 1
                continue
        if open_start is None and latest_end > as_of_text:
            summary.skipped += 1  # the seed already knows later, closed history for this model
            continue
        new_rows = _period_rows(provider, model, sheet, as_of_text, f"{label} ({litellm_key})")
        for row in new_rows:  # a tier the list left out keeps its price, and says where it came from
            side = (row["service_tier"], int(row["above_input_tokens"]))
            if side not in listed:
                row["source"] = next(
                    r["source"]
                    for r in by_start[open_start]
                    if (r["service_tier"], int(r["above_input_tokens"])) == side
                )
        if open_start is None:
            summary.added += 1
        else:
            summary.repriced += 1
            if open_start == as_of_text:  # the same day's list again: it replaces that period
                rows = [r for r in rows if r not in by_start[open_start]]
            else:
                for row in by_start[open_start]:
                    row["valid_to"] = as_of_text
        rows.extend(new_rows)

    write_seed(seed, rows)
    return summary
