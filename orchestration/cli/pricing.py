"""`pricing import`: fold a LiteLLM price list into seeds/model_pricing.csv as effective-dated periods."""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from orchestration.core.errors import UserError

SEED_COLUMNS = (
    "provider",
    "model",
    "input_usd_per_1m",
    "output_usd_per_1m",
    "cache_read_usd_per_1m",
    "valid_from",
    "valid_to",
    "model_pattern",
    "source",
)

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
    if per_token is None or isinstance(per_token, bool):
        return None
    value = Decimal(str(per_token)) * ONE_MILLION
    text = format(value.normalize(), "f")
    return "0" if Decimal(text) == 0 else text


def read_litellm(path: Path) -> dict[tuple[str, str], dict[str, str | None]]:
    """(provider, model) -> prices, for the chat models of the providers the proxy serves."""
    if not path.is_file():
        raise UserError(f"price list {path} does not exist: pass a LiteLLM model_prices JSON file")
    try:
        raw = json.loads(path.read_text(), parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise UserError(f"price list {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(raw, dict):
        raise UserError(f"price list {path} is not a LiteLLM price map (expected a JSON object)")

    rank = {name: i for i, name in enumerate(LITELLM_PROVIDERS)}
    chosen: dict[tuple[str, str], tuple[int, dict[str, str | None]]] = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict) or entry.get("mode") not in PRICED_MODES:
            continue
        litellm_provider = entry.get("litellm_provider")
        if litellm_provider not in LITELLM_PROVIDERS:
            continue
        input_price = per_million(entry.get("input_cost_per_token"))
        output_price = per_million(entry.get("output_cost_per_token"))
        if input_price is None or output_price is None:
            continue
        model = key.split("/", 1)[1] if "/" in key else key
        provider = LITELLM_PROVIDERS[litellm_provider]
        prices = {
            "input_usd_per_1m": input_price,
            "output_usd_per_1m": output_price,
            "cache_read_usd_per_1m": per_million(entry.get("cache_read_input_token_cost")),
            "litellm_key": key,
        }
        ident = (provider, model.strip().lower())
        if ident not in chosen or rank[litellm_provider] < chosen[ident][0]:
            chosen[ident] = (rank[litellm_provider], prices)
    return {ident: prices for ident, (_, prices) in chosen.items()}


def read_seed(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [{col: row.get(col) or "" for col in SEED_COLUMNS} for row in csv.DictReader(handle)]


def write_seed(path: Path, rows: list[dict[str, str]]) -> None:
    rows = sorted(rows, key=lambda r: (r["provider"], r["model"], r["model_pattern"], r["valid_from"]))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SEED_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _same_price(row: dict[str, str], prices: dict[str, str | None]) -> bool:
    return all(
        Decimal(row[col] or "0") == Decimal(prices[col] or "0") for col in ("input_usd_per_1m", "output_usd_per_1m")
    )


def import_price_list(price_list: Path, seed: Path, as_of: dt.date, source: str | None = None) -> ImportSummary:
    """Update the seed from a price list observed on `as_of`.

    A changed price closes the open period (valid_to = as_of) and opens a new one; a model not
    yet in the seed gets a period starting at as_of; nothing is ever deleted.
    """
    prices_by_model = read_litellm(price_list)
    rows = read_seed(seed)
    label = source or price_list.name
    summary = ImportSummary()
    as_of_text = as_of.isoformat()

    exact_rows: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        if not row["model_pattern"]:
            exact_rows.setdefault((row["provider"], row["model"]), []).append(row)

    for (provider, model), prices in sorted(prices_by_model.items()):
        periods = exact_rows.get((provider, model), [])
        open_period = next((r for r in periods if not r["valid_to"]), None)
        latest_end = max((r["valid_to"] for r in periods if r["valid_to"]), default="")
        if open_period and open_period["valid_from"] > as_of_text:
            raise UserError(
                f"{provider}/{model} already has a period from {open_period['valid_from']}, after "
                f"--as-of {as_of_text}: import price lists oldest first"
            )
        if open_period and _same_price(open_period, prices):
            summary.unchanged += 1
            continue
        if not open_period and latest_end > as_of_text:
            summary.skipped += 1  # the seed already knows later, closed history for this model
            continue
        new_row = {
            "provider": provider,
            "model": model,
            "input_usd_per_1m": prices["input_usd_per_1m"] or "",
            "output_usd_per_1m": prices["output_usd_per_1m"] or "",
            "cache_read_usd_per_1m": prices["cache_read_usd_per_1m"] or "",
            "valid_from": as_of_text,
            "valid_to": "",
            "model_pattern": "",
            "source": f"{label} ({prices['litellm_key']})",
        }
        if open_period:
            if open_period["valid_from"] == as_of_text:
                open_period.update(
                    {
                        k: new_row[k]
                        for k in ("input_usd_per_1m", "output_usd_per_1m", "cache_read_usd_per_1m", "source")
                    }
                )
            else:
                open_period["valid_to"] = as_of_text
                rows.append(new_row)
            summary.repriced += 1
        else:
            rows.append(new_row)
            summary.added += 1

    write_seed(seed, rows)
    return summary
