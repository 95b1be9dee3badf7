"""`make bench` still works: a tiny run (no timing is judged here, only that every figure is produced).

One size only (`--one-size`): both histories run the same code, and a second one doubled the
file's time in the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

REQUIRED = (
    "dashboard_p95_ms_10m",
    "dashboard_speedup_vs_raw_10m",
    # the scheduled path: the README's cron command as a whole process, at two lengths of history
    "scheduled_build_wall_s_10m",
    "scheduled_build_30d_vs_3d",
    "scheduled_build_models_s_10m",
    "scheduled_build_tests_s_10m",
    "deep_check_wall_s_10m",
    "dagster_hourly_tick_s_10m",
    "incremental_speedup_vs_full_10m",
    "incremental_vs_floor_10m",
    "full_build_vs_floor_10m",
    "backfill_vs_full_build",
    "speedup_vs_seed_function_loop",
    "trigger_insert_slowdown",
    # the figures that explain the missed targets
    "speedup_vs_seed_function_same_hour_one_pass",
    "full_build_vs_contract_grain_floor_10m",
    "full_build_int_model_vs_contract_grain_floor_10m",
    "incremental_vs_contract_grain_floor_10m",
    # percentiles, local time, forecast
    "percentiles_full_build_overhead_10m",
    "percentiles_incremental_overhead_10m",
    "sketch_share_of_aggregate_bytes_10m",
    "dashboard_kathmandu_vs_utc_p95_busiest_10m",
    "dashboard_unstored_zone_vs_utc_p95_busiest_10m",
    "dashboard_366d_unstored_zone_p95_ms_busiest_10m",
    "dashboard_366d_unstored_zone_other_tenant_p95_ms_busiest_10m",
    "forecast_mape_trending",
    "forecast_mape_trending_naive",
    "forecast_mape_flat_vs_naive",
    # token classes: the same rows with the class columns, against a copy without
    "token_classes_full_build_overhead_10m",
    "token_classes_scheduled_overhead_10m",
    "token_classes_dashboard_p95_ratio_10m",
    # who spent it: the same rows with keys, end users, tags and errors, against a copy without
    "attribution_scheduled_overhead_10m",
    "attribution_scheduled_models_overhead_10m",
    "attribution_usage_by_dimension_daily_mib_10m",
    "attribution_breakdown_p95_ms_10m",
    # alerts at scale: every project's digest delivered by webhook and email
    "alerts_check_at_scale_s",
    "alerts_webhook_posts_at_scale",
    "alerts_emails_at_scale",
)


def test_the_benchmark_runs_end_to_end_and_writes_every_figure(server, tmp_path):
    args = [
        "--one-size",
        "--large",
        "6000",
        "--days",
        "3",
        "--projects",
        "20",
        "--calls",
        "5",
        "--repeat",
        "1",
        "--trigger-rows",
        "300",
        "--backtest-projects",
        "3",
        "--alert-projects",
        "40",
        "--out",
        str(tmp_path),
    ]
    result = subprocess.run(
        [sys.executable, "bench/run.py", *args], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads((tmp_path / "latest.json").read_text())
    for key in REQUIRED:
        assert isinstance(figures[key], (int, float)) and figures[key] > 0, (key, figures.get(key))
    assert figures["machine"]["cores"] >= 1 and figures["postgres_version"].startswith("18")
    assert (tmp_path / "latest.png").stat().st_size > 1000
    assert "| dashboard_p95_ms_10m |" in (tmp_path / "latest.md").read_text()
    assert figures["alerts_fired_at_scale"] == figures["alerts_webhook_posts_at_scale"] == 40
    assert figures["alerts_emails_at_scale"] == 40 and figures["alerts_undelivered_at_scale"] == 0
