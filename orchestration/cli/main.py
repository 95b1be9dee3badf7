"""`watchllm-analytics`: the command line for the database, the data tools and dbt."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import uuid
from pathlib import Path

from orchestration import settings
from orchestration.cli import backfill, compare, export, generate, pricing, stats
from orchestration.core import database, reconcile, retention
from orchestration.core.dbt_runner import run_dbt
from orchestration.core.errors import UserError


def cmd_db(args: argparse.Namespace) -> int:
    if settings.uses_external_database():
        conn = database.resolve(start=False)
        if args.action == "start":
            print(f"PG* variables are set: using the database at {conn.describe()}; no embedded server started")
        elif args.action == "stop":
            print(f"PG* variables are set: the database at {conn.describe()} is not ours to stop")
        elif args.action == "status":
            with database.cursor(conn) as cur:
                version = cur.execute("show server_version").fetchone()[0]
            print(f"external database at {conn.describe()} (PostgreSQL {version}) is reachable")
        else:
            print(conn.uri)
        return 0
    if args.action == "start":
        conn = database.start_embedded()
        print(f"embedded Postgres running: {conn.uri}")
    elif args.action == "stop":
        print("embedded Postgres stopped" if database.stop_embedded() else "embedded Postgres was not running")
    elif args.action == "status":
        conn = database.embedded_status()
        print(
            f"embedded Postgres running: {conn.uri}"
            if conn
            else f"embedded Postgres stopped (data in {database.pgdata_dir()})"
        )
        return 0 if conn else 3
    else:
        conn = database.embedded_status()
        if conn is None:
            raise UserError("the embedded Postgres is not running: start it with `watchllm-analytics db start`")
        print(conn.uri)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    conn = database.resolve()
    if not conn.embedded and not args.allow_external:
        raise UserError(
            f"refusing to write synthetic rows into the database at {conn.describe()} (PG* is set):"
            " add --allow-external if that is really what you want"
        )
    end = _parse_utc(args.end, "--end") if args.end else generate.default_end()
    options = generate.GenerateOptions(
        rows=args.rows,
        days=args.days,
        projects=args.projects,
        seed=args.seed,
        messy=args.messy,
        end=end,
        token_classes=args.token_classes,
        attribution=args.attribution,
        keys=args.keys,
        end_users=args.end_users,
        tags=args.tags,
        error_rate=args.error_rate,
    )
    generate.validate(options)
    inserted = generate.generate(conn, options, progress=generate.print_progress)
    sys.stderr.write("\n")
    print(
        f"inserted {inserted:,} rows into {settings.source_schema()}.usage_logs "
        f"({options.rows - inserted:,} already there)"
    )
    return 0


def cmd_dbt(args: argparse.Namespace) -> int:
    return run_dbt(database.resolve(), args.dbt_args).returncode


def cmd_export(args: argparse.Namespace) -> int:
    request = export.ExportRequest(
        project_id=stats.parse_project_id(args.project_id),
        start=export.parse_day(args.start, "--start"),
        end=export.parse_day(args.end, "--end"),
        grain=args.grain,
        format=args.format,
    )
    export.validate(request)
    out = args.out or export.default_path(request)
    written = export.export(database.resolve(), request, out, progress=generate.print_progress)
    if out != "-":
        sys.stderr.write(f"\rexported {written:,} rows to {out}\n")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    project = stats.parse_project_id(args.project_id)
    stats.check_days(args.days)
    with database.cursor(database.resolve()) as cur:
        rows = stats.dashboard_stats(cur, project, args.days, args.time_zone)
        forecast = stats.forecast_line(cur, project) if args.forecast else None
    print(f"project {project}, last {args.days} days ({args.time_zone})")
    print(stats.format_dashboard(rows))
    if forecast:
        print(forecast)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        project = uuid.UUID(args.project_id)
    except ValueError:
        raise UserError(f"PROJECT_ID must be a uuid, got {args.project_id!r}") from None
    month = compare.parse_month(args.month) if args.month else None
    with database.cursor(database.resolve()) as cur:
        month, rows = compare.candidates(cur, project, month)
    print(compare.format_comparison(project, month, rows))
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from orchestration.core import alerts

    with database.connect(database.resolve(), autocommit=True) as conn:
        if args.alerts_command == "list":
            with conn.cursor() as cur:
                events = alerts.recent_events(cur, limit=args.limit, open_only=args.open)
            if not events:
                print("no alerts recorded")
            for e in events:
                state = "resolved" if e["resolved_at"] else "open"
                sent = "delivered" if e["delivered_at"] else f"undelivered ({e['delivery_attempts']} attempts)"
                print(
                    f"#{e['id']} {e['fired_at']:%Y-%m-%d %H:%M} {e['rule']} {e['project_id']} {e['subject']} "
                    f"observed {e['observed']} threshold {e['threshold']}: {state}, {sent}"
                )
            return 0
        # the delivery settings are checked before anything is judged: a bad one is a one-line error
        settings.smtp_url(), settings.alert_email_to()
        as_of = _parse_utc(args.as_of, "--as-of") if args.as_of else None
        if args.record and not as_of:
            raise UserError("--record only goes with --as-of (a check without --as-of always records)")
        if args.record and args.dry_run:
            raise UserError("pass either --dry-run or --record, not both")
        # a replay (--as-of) judges another time: it records and sends only when asked to
        dry_run = args.dry_run or (as_of is not None and not args.record)
        result = alerts.check(conn, as_of=as_of, dry_run=dry_run)
    print(alerts.to_json(result) if args.json else "\n".join(alerts.summary_lines(result, dry_run)))
    # a project that could not be judged is reported (exit 1) after every other project was handled
    return 1 if result.evaluation.failures else 0


def cmd_report(args: argparse.Namespace) -> int:
    from orchestration.core import reports

    project = stats.parse_project_id(args.project_id)
    if args.week and args.days:
        raise UserError("pass either --week or --days, not both")
    if args.email:
        from orchestration.core.delivery import parse_addresses

        parse_addresses(args.email, "--email")
    with database.cursor(database.resolve()) as cur:
        time_zone = args.time_zone or reports.reporting_time_zone(cur, project)
        today = reports.local_today(time_zone)
        if args.week:
            period = reports.parse_week(args.week)
        elif args.days:
            period = reports.last_days(today, args.days)
        else:
            period = reports.last_complete_week(dt.datetime.now(dt.UTC).date())
        data = reports.gather(cur, project, period, time_zone)
    out_dir = Path(args.out) if args.out else reports.default_out_dir(project, period)
    path = reports.write(data, out_dir)
    print(f"report {period.label} for {project}: {path}")
    print(
        f"  {data.totals.requests:,} requests, cost {reports.money(data.totals.cost)}, "
        f"saved {reports.money(data.totals.savings)}, {len(data.alerts)} alerts"
    )
    if args.email:
        from orchestration.core import delivery

        smtp = settings.smtp_url()
        if not smtp:
            raise UserError("--email needs WATCHLLM_SMTP_URL (smtp://host:port) to know where to send")
        try:
            delivery.send_email(smtp, reports.email(data, [args.email]))
        except delivery.DeliveryError as exc:
            raise UserError(f"the report was written but not sent: {exc}") from None
        print(f"  sent to {args.email}")
    return 0


def cmd_spark(args: argparse.Namespace) -> int:
    from orchestration.spark import transfer

    start = _parse_date(args.start, "--start") if args.start else None
    end = _parse_date(args.end, "--end") if args.end else None
    if start and end and start >= end:
        raise UserError("--start must be before --end (end is exclusive)")
    conn = database.resolve()
    with database.connect(conn, autocommit=True) as pg:
        if args.spark_command == "export-logs":
            days = transfer.export_logs(pg, start, end, force=args.force)
            exported = [d for d in days if d.action == "exported"]
            touched = [d for d in days if d.action == "touched by retention"]
            print(
                f"export-logs: {len(exported)} day(s) exported ({sum(d.rows for d in exported):,} rows), "
                f"{len(days) - len(exported) - len(touched)} already in Spark"
                + (f", {len(touched)} touched by retention (Spark keeps its copy)" if touched else "")
            )
            return 0
        copied = transfer.publish(pg, start, end)
    print(f"publish: {sum(copied.values()):,} rows into {len(copied)} Postgres tables, in one transaction")
    transfer.refresh_postgres_only_outputs(conn)
    print(f"publish: {' and '.join(transfer.POSTGRES_ONLY_OUTPUTS)} rebuilt on Postgres")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from orchestration.cli.summary import print_summary

    with database.cursor(database.resolve()) as cur:
        busiest = print_summary(cur, days=args.days)
        if args.write_report and busiest:
            from orchestration.core import reports

            zone = reports.reporting_time_zone(cur, busiest)
            period = reports.last_complete_week(dt.datetime.now(dt.UTC).date())
            path = reports.write(reports.gather(cur, busiest, period, zone), reports.default_out_dir(busiest, period))
            print(f"\nweekly savings report {period.label} of the busiest project: {path}")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    with database.connect(database.resolve(), autocommit=True) as conn:
        if args.dry_run:
            counts = backfill.count(conn)
            print(
                f"dry run: {counts.candidates:,} cached rows have potential_cost_usd 0 or NULL; "
                f"{counts.priceable:,} would be filled from the pricing seed, "
                f"{counts.unpriceable:,} have no price and would stay as they are"
            )
            return 0
        counts = backfill.backfill(conn, args.batch_size, progress=print)
    print(
        f"done: {counts.updated:,} rows updated in {counts.batches:,} batches; "
        f"{counts.candidates - counts.updated:,} candidates left unchanged (no price in the seed)"
    )
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    conn = database.resolve()
    with database.cursor(conn) as cur:
        mismatches = reconcile.mismatched_days(cur, args.days, args.lookback_hours)
    if not mismatches:
        print(f"every closed day of the last {args.days} agrees with the raw rows")
        return 0
    print(f"{len(mismatches)} day(s) differ from the raw rows (rows later than the lookback window?):")
    for mismatch in mismatches:
        print(f"  {mismatch.describe()}")
    if not args.heal:
        print("heal them with: watchllm-analytics reconcile --heal (a range rebuild of exactly those days)")
        return 1
    for start, end in reconcile.day_ranges([m.day for m in mismatches]):
        print(f"rebuilding {start} .. {end} (end exclusive)")
        if run_dbt(conn, reconcile.rebuild_args(start, end)).returncode != 0:
            raise UserError(f"the rebuild of {start} .. {end} failed: see dbt's output above, then run it again")
    with database.cursor(conn) as cur:
        left = reconcile.mismatched_days(cur, args.days, args.lookback_hours)
    if left:
        raise UserError(f"{len(left)} day(s) still differ after the rebuild, e.g. {left[0].describe()}")
    print("healed: every closed day agrees with the raw rows")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    start = _parse_date(args.start, "--start")
    end = _parse_date(args.end, "--end")
    target = [] if args.target == "default" else ["--target", args.target]
    return run_dbt(database.resolve(), [*reconcile.rebuild_args(start, end), *target]).returncode


def cmd_deep_check(args: argparse.Namespace) -> int:
    return run_dbt(database.resolve(), list(settings.DEEP_CHECK_DBT_ARGS)).returncode


def cmd_upgrade(args: argparse.Namespace) -> int:
    from orchestration.core import upgrade

    upgrade.upgrade(database.resolve())
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    policy = retention.Policy(
        raw_days=retention.parse_days(args.raw_days, "--raw-days"),
        hourly_days=retention.parse_days(args.hourly_days, "--hourly-days"),
        daily_days=retention.parse_days(args.daily_days, "--daily-days"),
    )
    with database.connect(database.resolve(), autocommit=True) as conn:
        deleted = retention.apply(conn, policy, dry_run=args.dry_run, progress=print if args.verbose else None)
    verb = "would delete" if args.dry_run else "deleted"
    for table, count in deleted.items():
        print(f"{table}: {verb} {count:,} rows")
    if not deleted:
        print("nothing to do: every table is kept forever")
    return 0


def cmd_pricing_import(args: argparse.Namespace) -> int:
    as_of = _parse_date(args.as_of, "--as-of")
    seed = Path(args.seed)
    summary = pricing.import_price_list(Path(args.file), seed, as_of, source=args.source)
    print(f"{seed}: {summary}")
    return 0


def _parse_date(text: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{flag} must be a date like 2026-11-01, got {text!r}") from None


def _parse_utc(text: str, flag: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"{flag} must be an ISO date or time like 2026-11-01T12:00, got {text!r}") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchllm-analytics",
        description="Usage analytics for the LLM proxy: embedded database, data tools and dbt.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="start, stop or inspect the embedded Postgres")
    db.add_argument("action", choices=["start", "stop", "status", "url"])
    db.set_defaults(func=cmd_db)

    gen = sub.add_parser("generate", help="insert synthetic usage_logs rows")
    gen.add_argument("--rows", type=int, default=100_000)
    gen.add_argument("--days", type=float, default=30, help="span of time the rows cover, ending at --end")
    gen.add_argument("--projects", type=int, default=50)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--messy", action="store_true", help="add every kind of bad row from the contract")
    gen.add_argument(
        "--token-classes",
        action="store_true",
        help="add and fill the optional token-class and service-tier columns (docs/pricing.md)",
    )
    gen.add_argument(
        "--attribution",
        action="store_true",
        help="add and fill the optional api_key_id, end_user, tags and status_code columns (docs/contract.md, 15)",
    )
    gen.add_argument("--keys", type=int, default=3, help="with --attribution: API keys in all")
    gen.add_argument("--end-users", type=int, default=500, help="with --attribution: end users in all")
    gen.add_argument("--tags", type=int, default=20, help="with --attribution: distinct tags in all")
    gen.add_argument("--error-rate", type=float, default=0.05, help="with --attribution: share of HTTP errors")
    gen.add_argument("--end", help="UTC end of the span (default: now); fix it for reproducible rows")
    gen.add_argument("--allow-external", action="store_true", help="allow writing into a PG* database")
    gen.set_defaults(func=cmd_generate)

    dbt = sub.add_parser("dbt", help="run dbt in this project with the right connection")
    dbt.add_argument("dbt_args", nargs=argparse.REMAINDER)
    dbt.set_defaults(func=cmd_dbt)

    ex = sub.add_parser("export", help="write a project's aggregates at one grain as CSV or Parquet")
    ex.add_argument("project_id")
    ex.add_argument("--start", required=True, help="first UTC day, YYYY-MM-DD")
    ex.add_argument("--end", required=True, help="last UTC day (included), YYYY-MM-DD")
    ex.add_argument(
        "--grain", required=True, choices=list(export.GRAINS), help="the rows: one per hour, day, model, ..."
    )
    ex.add_argument("--format", default="csv", choices=list(export.FORMATS), help="csv (default) or parquet")
    ex.add_argument(
        "--out", help="file to write, or - for stdout (default: watchllm-<project>-<grain>-<start>-<end>.<format>)"
    )
    ex.set_defaults(func=cmd_export)

    st = sub.add_parser("stats", help="print get_dashboard_stats for a project")
    st.add_argument("project_id")
    st.add_argument("--days", type=int, default=30)
    st.add_argument("--time-zone", default="UTC", help="calendar days of this IANA zone (default UTC)")
    st.add_argument("--forecast", action="store_true", help="also print this month's cost forecast")
    st.set_defaults(func=cmd_stats)

    cp = sub.add_parser("compare", help="what a project's month would have cost on every candidate model")
    cp.add_argument("project_id")
    cp.add_argument("--month", help="UTC month YYYY-MM (default: the project's latest)")
    cp.set_defaults(func=cmd_compare)

    al = sub.add_parser("alerts", help="evaluate the alert rules over the aggregates and deliver what fires")
    al_sub = al.add_subparsers(dest="alerts_command", required=True)
    alc = al_sub.add_parser("check", help="fire, resolve and deliver (run it after every `dbt build`)")
    alc.add_argument("--dry-run", action="store_true", help="print what would fire or resolve; record and send nothing")
    alc.add_argument(
        "--as-of",
        help="judge as if it were this UTC time (default: now), e.g. to replay a day; a dry run unless --record",
    )
    alc.add_argument("--record", action="store_true", help="with --as-of: record and deliver what fires")
    alc.add_argument("--json", action="store_true", help="print the outcome as JSON")
    alc.set_defaults(func=cmd_alerts)
    all_ = al_sub.add_parser("list", help="the latest recorded alerts and their delivery")
    all_.add_argument("--open", action="store_true", help="only alerts not yet resolved")
    all_.add_argument("--limit", type=int, default=50)
    all_.set_defaults(func=cmd_alerts)

    sp = sub.add_parser("spark", help="move data between Postgres and the Spark target (docs/scaling-out.md)")
    sp_sub = sp.add_subparsers(dest="spark_command", required=True)
    for name, help_text in (
        (
            "export-logs",
            "copy usage_logs into Spark, a UTC day at a time (a day whose rows, money and tokens match is skipped)",
        ),
        (
            "publish",
            "replace the range's buckets of every Postgres output table with the Spark build's, in one transaction",
        ),
    ):
        command = sp_sub.add_parser(name, help=help_text)
        command.add_argument("--start", help="first UTC day, YYYY-MM-DD (default: the first there is)")
        command.add_argument("--end", help="UTC day after the last, YYYY-MM-DD (default: after the last there is)")
        if name == "export-logs":
            command.add_argument(
                "--force", action="store_true", help="export every day of the range again, even one that matches"
            )
        command.set_defaults(func=cmd_spark)

    rp = sub.add_parser("report", help="write a project's savings report (HTML with charts); --email sends it")
    rp.add_argument("project_id")
    rp.add_argument("--week", help="ISO week YYYY-Www (default: the last complete week)")
    rp.add_argument("--days", type=int, help="instead of a week: the last N days up to today (a dashboard snapshot)")
    rp.add_argument("--out", help="directory for report.html and the PNGs (default .data/reports/PROJECT/PERIOD)")
    rp.add_argument("--email", help="also send it to this address over WATCHLLM_SMTP_URL")
    rp.add_argument("--time-zone", help="days of this IANA zone (default: the project's reporting zone, else UTC)")
    rp.set_defaults(func=cmd_report)

    sm = sub.add_parser("summary", help="print an overview of the aggregates (what `make demo` shows)")
    sm.add_argument("--days", type=int, default=30)
    sm.add_argument("--write-report", action="store_true", help="also write the busiest project's weekly report")
    sm.set_defaults(func=cmd_summary)

    bf = sub.add_parser("backfill-potential-cost", help="fill potential_cost_usd of cached rows from the pricing seed")
    bf.add_argument("--dry-run", action="store_true", help="only print the counts")
    bf.add_argument("--batch-size", type=int, default=10_000)
    bf.set_defaults(func=cmd_backfill)

    rc = sub.add_parser("reconcile", help="compare recent closed days with the raw rows; --heal rebuilds them")
    rc.add_argument("--days", type=int, default=settings.reconcile_days(), help="window of closed days")
    rc.add_argument(
        "--lookback-hours",
        type=int,
        default=settings.lookback_hours(),
        help="the lookback your scheduled builds use (dbt var lookback_hours; default from dbt_project.yml)",
    )
    rc.add_argument("--heal", action="store_true", help="rebuild the days that differ, then check again")
    rc.set_defaults(func=cmd_reconcile)

    rb = sub.add_parser("rebuild", help="rebuild every aggregate for UTC days [--start, --end) from the raw rows")
    rb.add_argument("--start", required=True, help="first UTC day, YYYY-MM-DD")
    rb.add_argument("--end", required=True, help="UTC day after the last, YYYY-MM-DD")
    rb.add_argument(
        "--target", choices=("default", "spark"), default="default", help="the dbt target (spark: docs/scaling-out.md)"
    )
    rb.set_defaults(func=cmd_rebuild)

    dc = sub.add_parser(
        "deep-check", help="run every deep_check test over all of history (the hourly build reads only its window)"
    )
    dc.set_defaults(func=cmd_deep_check)

    up = sub.add_parser(
        "upgrade", help="upgrade a database built by an earlier release: columns, constraints, recomputed buckets"
    )
    up.set_defaults(func=cmd_upgrade)

    rt = sub.add_parser("retention", help="delete raw logs and aggregates older than the retention policy")
    retention_defaults = settings.retention_defaults()
    rt.add_argument("--raw-days", default=retention_defaults["raw_days"])
    rt.add_argument("--hourly-days", default=retention_defaults["hourly_days"])
    rt.add_argument("--daily-days", default=retention_defaults["daily_days"])
    rt.add_argument("--dry-run", action="store_true", help="only count what would go")
    rt.add_argument("--verbose", action="store_true", help="print each day as it goes")
    rt.set_defaults(func=cmd_retention)

    pr = sub.add_parser("pricing", help="maintain the pricing seed")
    pr_sub = pr.add_subparsers(dest="pricing_command", required=True)
    imp = pr_sub.add_parser("import", help="fold a LiteLLM price list (JSON) into seeds/model_pricing.csv")
    imp.add_argument("file")
    imp.add_argument("--as-of", required=True, help="UTC date the price list was observed")
    imp.add_argument("--seed", default=str(settings.PRICING_SEED))
    imp.add_argument("--source", help="label for the source column (default: the file name)")
    imp.set_defaults(func=cmd_pricing_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["dbt"]:
        # everything after `dbt` goes to dbt untouched (argparse would eat options like --version)
        args = argparse.Namespace(func=cmd_dbt, dbt_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
