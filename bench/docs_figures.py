"""Rewrite the figures table of docs/performance.md from bench/results/latest.json.

`make bench-docs` after `make bench`: the text between `<!-- figures -->` and `<!-- /figures -->`
is replaced; nothing else on the page changes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "performance.md"
LATEST = REPO / "bench" / "results" / "latest.json"
MODEL_LABELS = (
    ("pass over raw rows", "int_usage_hourly_by_model"),
    ("hourly", "usage_aggregations_hourly"),
    ("daily", "usage_aggregations_daily"),
    ("by model", "usage_by_model_daily"),
    ("monthly", "project_savings_monthly"),
)


def figures(r: dict) -> str:
    large, small = r["sizes"]["large"], r["sizes"]["small"]
    loop = r["speedup_vs_seed_function_loop"]
    rows = [
        ("dashboard p95, 10M (worst of busiest/median project)", f"{r['dashboard_p95_ms_10m']:.1f} ms", "≤ 5 ms"),
        ("dashboard p95, 10M, median project", f"{large['dashboard_median_p95_ms']:.1f} ms", ""),
        ("dashboard vs raw scan, busiest project, 10M", f"{r['dashboard_speedup_vs_raw_10m']:.0f}× faster", "≥ 150×"),
        (
            "dashboard vs raw scan, median project, 10M",
            f"{r['dashboard_speedup_vs_raw_median_project_10m']:.1f}× faster",
            "",
        ),
        ("incremental build vs full build, 10M", f"{r['incremental_speedup_vs_full_10m']:.1f}× cheaper", "≥ 30×"),
        ("incremental build 10M / 1M", f"{r['incremental_growth_1m_to_10m']:.2f}", "≤ 1.3"),
        ("incremental build vs floor, 10M", f"{r['incremental_vs_floor_10m']:.0f}×", "≤ 10×"),
        (
            "incremental build vs the contract-grain floor (not a target), 10M",
            f"{r['incremental_vs_contract_grain_floor_10m']:.0f}×",
            "",
        ),
        ("incremental build, whole process with dbt start-up, 10M", f"{r['incremental_wall_s_10m']:.1f} s", ""),
        ("full build vs floor, 10M", f"{r['full_build_vs_floor_10m']:.1f}×", "≤ 1.5×"),
        (
            "full build vs the contract-grain floor (not a target: same pass by provider and model), 10M",
            f"{r['full_build_vs_contract_grain_floor_10m']:.1f}× (the pass over raw rows alone: "
            f"{r['full_build_int_model_vs_contract_grain_floor_10m']:.1f}×)",
            "",
        ),
        ("30-day backfill vs full build, 10M", f"{r['backfill_vs_full_build']:.2f}×", "≤ 1.5×"),
        (
            "ours vs the guide's function loop (one hour, 1000 projects)",
            f"{loop:.2f}× ({'ours slower' if loop < 1 else 'ours faster'})",
            "≥ 5× faster",
        ),
        (
            "our one pass over that hour vs the guide's function, one statement each (not a target)",
            f"{r['speedup_vs_seed_function_same_hour_one_pass']:.1f}× faster",
            "",
        ),
        (
            "insert slowdown with the guide's per-row trigger",
            f"{r['trigger_insert_slowdown']:.1f}× slower ({large['insert_plain_rows_per_s']:,.0f} → "
            f"{large['insert_trigger_rows_per_s']:,.0f} rows/s)",
            "ours: none",
        ),
        ("peak RSS: runner / dbt", f"{r['peak_rss_runner_mib']:.0f} / {r['peak_rss_dbt_mib']:.0f} MiB", ""),
    ]
    table = ["| figure | latest | target |", "|---|---:|---:|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]
    summary = (
        f"At 10M: full build {large['full_build_model_s']:.0f} s of model time (floor {large['floor_full_s']:.1f} s), "
        f"incremental {large['incremental_model_s']:.1f} s (floor {large['incremental_floor_s'] * 1000:.0f} ms; "
        f"1M: {small['incremental_model_s']:.1f} s), backfill {large['backfill_model_s']:.0f} s, dashboard p50 "
        f"{large['dashboard_busiest_p50_ms']:.1f} ms busiest / {large['dashboard_median_p50_ms']:.1f} ms median "
        f"project, raw scan {large['raw_scan_busiest_median_ms']:.0f} ms / "
        f"{large['raw_scan_median_median_ms']:.1f} ms. "
        f"Whole benchmark: {r['bench_wall_s'] / 60:.1f} min."
    )
    per_model = ", ".join(
        f"{label} {large[f'full_build_{name}_s']:.0f} s / {large[f'incremental_{name}_s']:.2f} s"
        for label, name in MODEL_LABELS
    )
    summary += f"\n\nModel time per model at 10M, full build / incremental: {per_model}."
    return "\n".join(table) + "\n\n" + summary


def main() -> int:
    if not LATEST.exists():
        print(f"{LATEST} is missing: run `make bench` first", file=sys.stderr)
        return 2
    text = PAGE.read_text()
    pattern = re.compile(r"(<!-- figures -->\n).*?(\n<!-- /figures -->)", re.S)
    if not pattern.search(text):
        print("docs/performance.md has no <!-- figures --> ... <!-- /figures --> block", file=sys.stderr)
        return 2
    new = pattern.sub(lambda m: m.group(1) + figures(json.loads(LATEST.read_text())) + m.group(2), text)
    PAGE.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
