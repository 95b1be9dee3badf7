"""Rewrite the figures table of docs/performance.md from bench/results/latest.json.

`make bench-docs` after `make bench`: the text between `<!-- figures -->` and `<!-- /figures -->`
is replaced; nothing else on the page changes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import TARGETS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "performance.md"
LATEST = REPO / "bench" / "results" / "latest.json"
DIMENSIONS = ("api_key", "end_user", "tag")
MODEL_LABELS = (
    ("pass over raw rows", "int_usage_hourly_by_model"),
    ("hourly", "usage_aggregations_hourly"),
    ("daily", "usage_aggregations_daily"),
    ("by model", "usage_by_model_daily"),
    ("monthly", "project_savings_monthly"),
    ("local days", "usage_aggregations_local_daily"),
)


def figures(r: dict) -> str:
    large, small = r["sizes"]["large"], r["sizes"]["small"]

    def target(key: str) -> str:
        return {"<=": "≤ ", ">=": "≥ "}[TARGETS[key][0]] + f"{TARGETS[key][1]:g}" if key in TARGETS else ""

    rows = [
        (
            "scheduled `dbt build` after one hour of traffic, 30 days of history (whole process, tests included)",
            f"{r['scheduled_build_wall_s_10m']:.1f} s wall ({r['scheduled_build_models_s_10m']:.1f} s models, "
            f"{r['scheduled_build_tests_s_10m']:.1f} s tests)",
            target("scheduled_build_wall_s_10m") + " s",
        ),
        (
            "the same, 30 days of history / 3 days at the same traffic per hour",
            f"{r['scheduled_build_30d_vs_3d']:.2f}× (models {r['scheduled_build_models_30d_vs_3d']:.2f}×, "
            f"tests {r['scheduled_build_tests_30d_vs_3d']:.2f}×)",
            target("scheduled_build_30d_vs_3d") + "×",
        ),
        ("deep check over all of history (daily), 10M", f"{r['deep_check_wall_s_10m']:.0f} s wall", ""),
        ("one Dagster hourly tick, in-process, 10M", f"{r['dagster_hourly_tick_s_10m']:.1f} s", ""),
        (
            "full build vs the contract-grain floor, 10M",
            f"{r['full_build_vs_contract_grain_floor_10m']:.1f}× (the pass over raw rows alone: "
            f"{r['full_build_int_model_vs_contract_grain_floor_10m']:.1f}×)",
            "(retired: ≤ 2.5×)",
        ),
        (
            "30-day backfill vs full build, 10M",
            f"{r['backfill_vs_full_build']:.2f}×",
            target("backfill_vs_full_build") + "×",
        ),
        (
            "latency percentiles: full build with / without sketches, 10M",
            f"{r['percentiles_full_build_overhead_10m']:.2f}×",
            target("percentiles_full_build_overhead_10m") + "×",
        ),
        (
            "latency percentiles: scheduled build's models with / without sketches (same hours, twin), 10M",
            f"{r['percentiles_incremental_overhead_10m']:.2f}× "
            f"({large['incremental_with_sketches_model_s']:.2f} / "
            f"{large['incremental_without_sketches_model_s']:.2f} s)",
            target("percentiles_incremental_overhead_10m") + "×",
        ),
        (
            "token classes (about 40% of requests with prompt-cache reads): full build with / without the columns, 10M",
            f"{r['token_classes_full_build_overhead_10m']:.2f}×",
            target("token_classes_full_build_overhead_10m") + "×",
        ),
        (
            "token classes: scheduled build's models with / without the columns (same hours), 10M",
            f"{r['token_classes_scheduled_overhead_10m']:.2f}× "
            f"({large['token_classes_scheduled_with_models_s']:.2f} / "
            f"{large['token_classes_scheduled_without_models_s']:.2f} s)",
            target("token_classes_scheduled_overhead_10m") + "×",
        ),
        (
            "token classes: dashboard p95 with / without the columns, busiest project, UTC, 10M",
            f"{r['token_classes_dashboard_p95_ratio_10m']:.2f}× "
            f"({large['token_classes_dashboard_with_p95_ms']:.1f} / "
            f"{large['token_classes_dashboard_without_p95_ms']:.1f} ms)",
            "unchanged",
        ),
        (
            "keys, end users, tags and errors (2,000 keys, 100,000 end users, 50 tags, 3% errors): scheduled "
            "build with / without the columns (same hours, whole process), 10M",
            f"{r['attribution_scheduled_overhead_10m']:.2f}× ({large['attribution_scheduled_with_wall_s']:.1f} / "
            f"{large['attribution_scheduled_without_wall_s']:.1f} s wall; models "
            f"{r['attribution_scheduled_models_overhead_10m']:.2f}×, the two dimension tables "
            f"{large['attribution_scheduled_dimension_models_s']:.1f} s)",
            target("attribution_scheduled_overhead_10m") + "×",
        ),
        (
            "the same: size of usage_by_dimension_daily (int_usage_hourly_by_dimension; usage_by_model_daily), 10M",
            f"{large['attribution_usage_by_dimension_daily_mib']:,.0f} MiB, "
            f"{large['attribution_usage_by_dimension_daily_rows']:,} rows "
            f"({large['attribution_int_usage_hourly_by_dimension_mib']:,.0f} MiB, "
            f"{large['attribution_int_usage_hourly_by_dimension_rows']:,} rows; "
            f"{large['attribution_usage_by_model_daily_mib']:,.0f} MiB)",
            "",
        ),
        (
            "get_usage_breakdown p95, busiest project, 30 days, UTC, as `authenticated`: api_key / end_user / tag",
            " / ".join(f"{large[f'attribution_breakdown_{d}_p95_ms']:.1f}" for d in DIMENSIONS)
            + " ms (values in 30 days: "
            + " / ".join(f"{large.get(f'attribution_busiest_30d_{d}_values', 0):,}" for d in DIMENSIONS)
            + ")",
            target("attribution_breakdown_p95_ms_10m") + " ms",
        ),
        (
            "latency sketches' share of the aggregate tables' bytes, 10M",
            f"{100 * r['sketch_share_of_aggregate_bytes_10m']:.0f}%",
            "",
        ),
        (
            "dashboard p95, 30 days, as `authenticated`, UTC, busiest / median project, 10M",
            f"{large['dashboard_busiest_p95_ms']:.1f} / {large['dashboard_median_p95_ms']:.1f} ms",
            target("dashboard_p95_ms_10m") + " ms",
        ),
        (
            "dashboard vs the guide's raw scan, busiest project (medians), 10M",
            f"{r['dashboard_speedup_vs_raw_10m']:.0f}× faster",
            target("dashboard_speedup_vs_raw_10m") + "×",
        ),
        (
            "dashboard p95 in Asia/Kathmandu (the project's reporting zone) / UTC, busiest project",
            f"{r['dashboard_kathmandu_vs_utc_p95_busiest_10m']:.2f}× "
            f"({large['dashboard_busiest_kathmandu_p95_ms']:.1f} ms)",
            target("dashboard_kathmandu_vs_utc_p95_busiest_10m") + "×",
        ),
        (
            "dashboard p95 in Asia/Kathmandu (the project's reporting zone) / UTC, median project",
            f"{r['dashboard_kathmandu_vs_utc_p95_median_10m']:.2f}× "
            f"({large['dashboard_median_kathmandu_p95_ms']:.1f} ms)",
            target("dashboard_kathmandu_vs_utc_p95_median_10m") + "×",
        ),
        (
            "dashboard p95 in a zone the project does not report in (Asia/Kolkata) / UTC, busiest project",
            f"{r['dashboard_unstored_zone_vs_utc_p95_busiest_10m']:.1f}× "
            f"({large['dashboard_busiest_unstored_zone_p95_ms']:.0f} ms; median project "
            f"{r['dashboard_unstored_zone_vs_utc_p95_median_10m']:.1f}×, "
            f"{large['dashboard_median_unstored_zone_p95_ms']:.0f} ms)",
            target("dashboard_unstored_zone_vs_utc_p95_busiest_10m") + "×",
        ),
        (
            "dashboard p95, 366 days in Asia/Kolkata, busiest project, as `authenticated`",
            f"{r['dashboard_366d_unstored_zone_p95_ms_busiest_10m']:.0f} ms",
            target("dashboard_366d_unstored_zone_p95_ms_busiest_10m") + " ms",
        ),
        (
            "the same call by a member of another project (sees none of its rows)",
            f"{r['dashboard_366d_unstored_zone_other_tenant_p95_ms_busiest_10m']:.0f} ms",
            "",
        ),
        (
            "forecast MAPE, trending histories (days 7, 14, 21)",
            f"{r['forecast_mape_trending']:.1f}% (naive run rate {r['forecast_mape_trending_naive']:.1f}%: "
            f"{r['forecast_mape_trending_vs_naive']:.2f}×)",
            "≤ 10%, ≤ 0.7× naive",
        ),
        (
            "forecast MAPE, flat histories",
            f"{r['forecast_mape_flat']:.1f}% (naive {r['forecast_mape_flat_naive']:.1f}%: "
            f"{r['forecast_mape_flat_vs_naive']:.2f}×)",
            "≤ 1× naive",
        ),
        (
            "insert slowdown with the guide's per-row trigger",
            f"{r['trigger_insert_slowdown']:.1f}× slower",
            "ours: none",
        ),
        (
            f"alerts at scale: {r['alert_projects']:,} projects whose rules fire, first check / the next",
            f"{r['alerts_check_at_scale_s']:.0f} s "
            f"({r['alerts_webhook_posts_at_scale'] + r['alerts_emails_at_scale']:,} messages) / "
            f"{r['alerts_check_at_scale_again_s']:.1f} s",
            "",
        ),
        ("peak RSS: runner / dbt", f"{r['peak_rss_runner_mib']:.0f} / {r['peak_rss_dbt_mib']:.0f} MiB", ""),
    ]
    table = ["| figure | latest | target |", "|---|---:|---:|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]
    per_model = ", ".join(f"{label} {large[f'full_build_{name}_s']:.0f} s" for label, name in MODEL_LABELS)
    summary = (
        f"At 10M rows over 30 days: full build {large['full_build_model_s']:.0f} s of model time "
        f"({per_model}; contract-grain floor {large['contract_grain_floor_full_s']:.1f} s), backfill "
        f"{large['backfill_model_s']:.0f} s. The short history ({small['rows']:,} rows over {small['days']} days): "
        f"scheduled build {small['incremental_wall_s']:.1f} s wall. Whole benchmark: {r['bench_wall_s'] / 60:.1f} min."
    )
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
