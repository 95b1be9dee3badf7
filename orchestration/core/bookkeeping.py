"""The tables the runner writes beside the dbt models, created when missing: what was alerted and
delivered (`alert_events`, `alert_delivery_attempts`) and which weekly reports were sent
(`report_deliveries`). Row level security is on and no tenant policy exists: end users read
nothing, operators everything. Creation is idempotent and safe for two processes at once.
"""

from __future__ import annotations

from psycopg import sql

from orchestration import settings

ALERT_TABLES = ("alert_events", "alert_delivery_attempts")
REPORT_TABLES = ("report_deliveries",)

_DDL = {
    "alert_events": """
create table if not exists {alert_events} (
    id bigint generated always as identity primary key,
    project_id uuid not null,
    rule text not null,
    subject text not null default '',
    window_start timestamptz not null,
    window_end timestamptz not null,
    observed numeric not null,
    threshold numeric not null,
    message text not null,
    details jsonb not null default '{{}}',
    fired_at timestamptz not null default now(),
    delivered_at timestamptz,
    webhook_delivered_at timestamptz,
    email_delivered_at timestamptz,
    delivery_attempts integer not null default 0,
    next_attempt_at timestamptz,
    last_error text,
    resolved_at timestamptz
);
create unique index if not exists alert_events_one_open_firing
    on {alert_events} (project_id, rule, subject) where resolved_at is null;
create index if not exists alert_events_undelivered on {alert_events} (id) where delivered_at is null;
create index if not exists alert_events_by_project on {alert_events} (project_id, fired_at);
alter table {alert_events} enable row level security;
revoke all on {alert_events} from public
""",
    "alert_delivery_attempts": """
create table if not exists {alert_delivery_attempts} (
    event_id bigint not null references {alert_events} (id) on delete cascade,
    channel text not null,
    attempted_at timestamptz not null default now(),
    succeeded boolean not null,
    error text
);
create index if not exists alert_delivery_attempts_by_event on {alert_delivery_attempts} (event_id);
alter table {alert_delivery_attempts} enable row level security;
revoke all on {alert_delivery_attempts} from public
""",
    "report_deliveries": """
create table if not exists {report_deliveries} (
    project_id uuid not null,
    period text not null,
    recipients text not null,
    sent_at timestamptz not null default now(),
    primary key (project_id, period)
);
alter table {report_deliveries} enable row level security;
revoke all on {report_deliveries} from public
""",
}


def relation(table: str) -> sql.Identifier:
    return sql.Identifier(settings.analytics_schema(), table)


def exists(cur, table: str) -> bool:
    schema = settings.analytics_schema().replace('"', '""')
    return cur.execute("select to_regclass(%s) is not null", (f'"{schema}"."{table}"',)).fetchone()[0]


def ensure(cur, tables: tuple[str, ...]) -> None:
    """Create `tables` (in order) when missing; `cur` on an autocommit connection."""
    if all(exists(cur, table) for table in tables):
        return
    names = {name: relation(name) for name in _DDL}
    with cur.connection.transaction():
        cur.execute("select pg_advisory_xact_lock(hashtext('watchllm_bookkeeping_tables'))")
        cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(settings.analytics_schema())))
        for table in tables:
            if exists(cur, table):
                continue  # another process created it while this one waited
            for statement in _DDL[table].split(";"):
                if statement.strip():
                    cur.execute(sql.SQL(statement).format(**names))
