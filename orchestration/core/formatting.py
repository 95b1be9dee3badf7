"""How figures are shown to a person: money to the cent, percents, milliseconds. One place, so the
CLI, alerts and reports print the same figure the same way."""

from __future__ import annotations

from decimal import Decimal


def money(value: Decimal | None) -> str:
    """Dollars to the cent; 'unknown' for an unknown amount (never $0)."""
    return "unknown" if value is None else f"${value:,.2f}"


def percent(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def milliseconds(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def optional(value: object) -> str:
    return "-" if value is None else str(value)
