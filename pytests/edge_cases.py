"""Hand-written rows on every boundary the contract names, added to generated traffic."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from conftest import request

UTC = dt.UTC
EDGE_PROJECT = uuid.UUID("e0000000-0000-0000-0000-000000000001")
PLUS9 = dt.timezone(dt.timedelta(hours=9))
MINUS5 = dt.timezone(dt.timedelta(hours=-5))


def edge_rows(now: dt.datetime) -> list[dict]:
    p = EDGE_PROJECT
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=6)
    midnight = dt.datetime.combine(now.astimezone(UTC).date() - dt.timedelta(days=2), dt.time(), UTC)
    tiny = dt.timedelta(microseconds=1)
    return [
        # hour boundary: the first instant belongs to the hour, the instant before to the previous one
        request(p, hour),
        request(p, hour - tiny),
        request(p, hour + dt.timedelta(minutes=59, seconds=59)),
        # day boundary, also written with non-UTC offsets
        request(p, midnight),
        request(p, midnight - tiny),
        request(p, (midnight + dt.timedelta(hours=3)).astimezone(PLUS9)),
        request(p, (midnight - dt.timedelta(minutes=30)).astimezone(MINUS5)),
        # price-period boundary of gpt-4o ($5/$15 until 2024-10-02, then $2.50/$10), cost not recorded
        request(
            p,
            dt.datetime(2024, 10, 1, 23, 59, 59, 999999, UTC),
            model="gpt-4o",
            cost_usd=None,
            potential_cost_usd=None,
            tokens_input=1_000_000,
            tokens_output=100_000,
        ),
        request(
            p,
            dt.datetime(2024, 10, 2, tzinfo=UTC),
            model="gpt-4o",
            cost_usd=None,
            potential_cost_usd=None,
            tokens_input=1_000_000,
            tokens_output=100_000,
        ),
        request(
            p,
            dt.datetime(2024, 10, 2, 8, 59, 59, tzinfo=PLUS9),
            model="GPT-4o",
            cached=True,
            cost_usd=0,
            potential_cost_usd=0,
            tokens_input=1_000_000,
            tokens_output=0,
        ),
        # deepseek-chat's price change inside the dashboard window (2026-11-01), cached, potential NULL
        request(
            p,
            dt.datetime(2026, 10, 31, 23, 59, 59, 999999, UTC),
            provider="deepseek",
            model="deepseek-chat",
            cached=True,
            cost_usd=0,
            potential_cost_usd=None,
            tokens_input=123_457,
            tokens_output=98_765,
        ),
        request(
            p,
            dt.datetime(2026, 11, 1, tzinfo=UTC),
            provider="deepseek",
            model="deepseek-chat",
            cached=True,
            cost_usd=0,
            potential_cost_usd=None,
            tokens_input=123_457,
            tokens_output=98_765,
        ),
        # slightly in the future (kept) and far in the future (rejected)
        request(p, now + dt.timedelta(minutes=2)),
        request(p, now + dt.timedelta(days=1)),
        # normalised, kept
        request(
            p,
            hour,
            provider="  OpenAI\t",
            model=" GPT-4o-Mini ",
            tokens_input=None,
            tokens_output=None,
            cached=None,
            latency_ms=-7,
        ),
        request(p, hour, provider=None, model="   ", latency_ms=None),
        request(p, hour, provider="", model=None, cached=True, cost_usd=None, potential_cost_usd=None),
        # unpriced: cached, no potential recorded, model unknown to the seed
        request(p, hour, model="nonexistent-model", cached=True, cost_usd=0, potential_cost_usd=0),
        # unpriced: not cached, no cost recorded, model unknown
        request(p, hour, model="nonexistent-model", cost_usd=None, potential_cost_usd=None),
        # priced by pattern (fine-tune), cost not recorded
        request(p, hour, model="ft:gpt-4o-mini-2024-07-18:acme::zz9", cost_usd=None, potential_cost_usd=None),
        # cached with a recorded potential: kept as recorded
        request(p, hour, cached=True, cost_usd=Decimal(0), potential_cost_usd=Decimal("0.123456789012345678")),
        # extreme but valid values
        request(
            p,
            hour,
            tokens_input=2_147_483_647,
            tokens_output=2_147_483_647,
            cost_usd=None,
            potential_cost_usd=None,
            latency_ms=2_147_483_647,
        ),
        request(p, hour, cost_usd=Decimal("1234.567890123456789"), potential_cost_usd=None),
        # rejected, each with every rule it breaks
        request(None, hour),
        request(p, None),
        request(p, hour, tokens_input=-1),
        request(p, hour, tokens_output=-1),
        request(p, hour, cost_usd=Decimal("-0.01")),
        request(p, hour, potential_cost_usd=Decimal("-0.01")),
        request(None, None, tokens_input=-5, tokens_output=-5, cost_usd=Decimal(-1), potential_cost_usd=Decimal(-1)),
    ]
