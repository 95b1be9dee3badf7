"""Tenant isolation on the dashboard path, the way Supabase runs it (issue 5, items 8 and 9).

The test database gets what a Supabase project has: the `anon` and `authenticated` roles, an
`auth.uid()` that reads the caller's JWT subject, and the proxy's own tables with their RLS
(projects, project_members, usage_logs). Then the build applies our RLS, policies and grants, and
the tests query as real roles.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

import psycopg
import pytest
from conftest import BUILD_TIMEZONE, insert_rows, request

from orchestration.core import database

USER_A, USER_B, USER_C = (uuid.UUID(int=i) for i in (0xA, 0xB, 0xC))
PROJECT_A, PROJECT_B, PROJECT_SHARED = (uuid.UUID(int=0x1000 + i) for i in range(3))
SUPABASE_LIKE = """
do $$ begin
    if not exists (select 1 from pg_roles where rolname = 'anon') then create role anon nologin; end if;
    if not exists (select 1 from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin;
    end if;
end $$;
create schema if not exists auth;
create or replace function auth.uid() returns uuid language sql stable
    as $$ select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
grant usage on schema auth to anon, authenticated;
create table public.projects (id uuid primary key, user_id uuid not null);
create table public.project_members (project_id uuid not null, user_id uuid not null);
-- the proxy's own policies on its tables (not ours): members read their projects' rows
alter table public.projects enable row level security;
alter table public.project_members enable row level security;
alter table public.usage_logs enable row level security;
create policy member_read on public.usage_logs for select to authenticated using (
    project_id in (select id from public.projects where user_id = auth.uid()
                   union all select project_id from public.project_members where user_id = auth.uid()));
create policy own_read on public.projects for select to authenticated using (user_id = auth.uid());
create policy own_read on public.project_members for select to authenticated using (user_id = auth.uid());
grant usage on schema public to anon, authenticated;
grant select on public.usage_logs, public.projects, public.project_members to authenticated;
"""


@pytest.fixture(scope="module")
def db(make_db):
    db = make_db("wl_test_security")
    db.cli("generate", "--rows", "0", "--allow-external")
    with db.connect() as conn:
        conn.execute(SUPABASE_LIKE)
        conn.execute(
            "insert into public.projects values (%s, %s), (%s, %s), (%s, %s)",
            (PROJECT_A, USER_A, PROJECT_B, USER_B, PROJECT_SHARED, USER_B),
        )
        conn.execute("insert into public.project_members values (%s, %s)", (PROJECT_SHARED, USER_A))
    now = db.now()
    rows = []
    for project, count in ((PROJECT_A, 30), (PROJECT_B, 50), (PROJECT_SHARED, 20)):
        rows += [request(project, now - dt.timedelta(hours=2 * i + 5), cached=i % 4 == 0) for i in range(count)]
    insert_rows(db, rows)
    db.dbt("build")
    # every project reports in Asia/Kolkata: their local days are stored too
    with db.connect() as conn:
        conn.execute(
            "insert into analytics.project_settings (project_id, time_zone)"
            " select id, 'Asia/Kolkata' from public.projects"
        )
    today = now.astimezone(dt.UTC).date()
    db.cli("rebuild", "--start", str(today - dt.timedelta(days=6)), "--end", str(today + dt.timedelta(days=1)))
    # traffic no build has aggregated yet: the dashboard's open tail must be isolated too
    insert_rows(db, [request(p, now - dt.timedelta(minutes=3)) for p in (PROJECT_A, PROJECT_B, PROJECT_B)])
    return db


def as_role(db, role: str, user: uuid.UUID | None = None) -> psycopg.Connection:
    conn = psycopg.connect(**database._kwargs(db.env), autocommit=True)
    conn.execute(f"set timezone = '{BUILD_TIMEZONE}'")
    conn.execute(f"set role {role}")
    conn.execute("select set_config('request.jwt.claim.sub', %s, false)", (str(user) if user else "",))
    return conn


AGGREGATES = [
    "int_usage_hourly_by_model",
    "usage_aggregations_hourly",
    "usage_aggregations_daily",
    "usage_by_model_daily",
    "usage_aggregations_local_daily",
    "project_savings_monthly",
]


@pytest.mark.parametrize("name", AGGREGATES)
def test_a_tenant_reads_only_its_projects_rows_of_every_aggregate(db, name):
    owner_total = db.query(f"select project_id, count(*) as n from analytics.{name} group by 1")
    assert {r["project_id"] for r in owner_total} == {PROJECT_A, PROJECT_B, PROJECT_SHARED}
    with as_role(db, "authenticated", USER_A) as conn:
        seen = {r[0] for r in conn.execute(f"select distinct project_id from analytics.{name}")}
    assert seen == {PROJECT_A, PROJECT_SHARED}
    with as_role(db, "authenticated", USER_C) as conn:
        assert conn.execute(f"select count(*) from analytics.{name}").fetchone()[0] == 0


def test_the_dashboard_shows_a_tenant_its_own_project_exactly_as_the_owner_sees_it(db):
    expected = db.query("select * from public.get_dashboard_stats(%s, 7)", (PROJECT_A,))
    assert sum(r["total_requests"] for r in expected) == 31  # 30 built + 1 not yet built
    with as_role(db, "authenticated", USER_A) as conn:
        conn.row_factory = psycopg.rows.dict_row
        conn.execute("set timezone = 'America/Adak'")
        mine = conn.execute("select * from public.get_dashboard_stats(%s, 7)", (PROJECT_A,)).fetchall()
        shared = conn.execute("select * from public.get_dashboard_stats(%s, 7)", (PROJECT_SHARED,)).fetchall()
    assert mine == expected
    assert sum(r["total_requests"] for r in shared) == 20


def test_the_dashboard_shows_nothing_of_another_tenants_project(db):
    with as_role(db, "authenticated", USER_A) as conn:
        rows = conn.execute(
            "select sum(total_requests), sum(total_cost_usd), count(*) from public.get_dashboard_stats(%s, 30)",
            (PROJECT_B,),
        ).fetchone()
    assert rows == (0, 0, 30)  # 30 zero-filled days: not one request of project B


@pytest.mark.parametrize("zone", ["Asia/Kathmandu", "America/New_York"])
def test_row_level_security_holds_through_the_time_zone_call(db, zone):
    """The local-day path reads the hourly pass and the requests: both under the caller's RLS."""
    owner = db.query("select sum(total_requests) as n from public.get_dashboard_stats(%s, 30, %s)", (PROJECT_A, zone))
    with as_role(db, "authenticated", USER_A) as conn:
        mine = conn.execute(
            "select sum(total_requests) from public.get_dashboard_stats(%s, 30, %s)", (PROJECT_A, zone)
        ).fetchone()[0]
        other = conn.execute(
            "select sum(total_requests), sum(total_cost_usd), count(*) from public.get_dashboard_stats(%s, 30, %s)",
            (PROJECT_B, zone),
        ).fetchone()
    assert mine == owner[0]["n"] == 31
    assert other == (0, 0, 30)
    with as_role(db, "anon", None) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("select * from public.get_dashboard_stats(%s, 30, %s)", (PROJECT_A, zone))


@pytest.mark.parametrize(
    "project, days",
    [
        ("' or true --", 30),
        (f"{PROJECT_B}' or '1'='1", 30),
        (str(PROJECT_B), "30; select * from analytics.usage_aggregations_daily"),
    ],
)
def test_crafted_arguments_are_rejected_by_type_not_interpreted(db, project, days):
    with as_role(db, "authenticated", USER_A) as conn, pytest.raises(psycopg.errors.DataError):
        conn.execute("select * from public.get_dashboard_stats(%s::text::uuid, %s::text::integer)", (project, days))


def test_a_null_user_or_an_unknown_project_reads_nothing(db):
    with as_role(db, "authenticated", None) as conn:
        assert (
            conn.execute("select sum(total_requests) from public.get_dashboard_stats(%s, 30)", (PROJECT_A,)).fetchone()[
                0
            ]
            == 0
        )
    with as_role(db, "authenticated", USER_A) as conn:
        assert (
            conn.execute(
                "select sum(total_requests) from public.get_dashboard_stats(%s, 30)", (uuid.uuid4(),)
            ).fetchone()[0]
            == 0
        )


def test_anon_can_read_and_call_nothing(db):
    with as_role(db, "anon") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from public.get_dashboard_stats(%s, 30)", (PROJECT_A,))
        for name in AGGREGATES:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"select count(*) from analytics.{name}")


def test_policies_and_grants_survive_every_way_dbt_writes(db):
    # a table dbt creates from scratch (first build after a drop), an incremental run that deletes
    # and inserts, one that rewrites the tables (macros/incremental/bucket_replace.sql), a full refresh
    with db.connect() as conn:
        conn.execute("drop table analytics.usage_aggregations_hourly")
    db.dbt("run", "--select", "usage_aggregations_hourly")
    db.dbt("run", "--vars", "{bucket_replace_rewrite_fraction: 2}")
    db.dbt("run", "--vars", "{bucket_replace_rewrite_fraction: 0}")
    db.dbt("build", "--full-refresh", "--exclude", "resource_type:test", "resource_type:unit_test")
    test_a_tenant_reads_only_its_projects_rows_of_every_aggregate(db, "usage_aggregations_hourly")
    test_the_dashboard_shows_nothing_of_another_tenants_project(db)
    test_anon_can_read_and_call_nothing(db)
    lint = catalog_lint(db)
    assert lint == [], lint


EXPOSED_SCHEMAS = ("public", "analytics")  # the API schema, and ours as if it were exposed too


def catalog_lint(db) -> list[str]:
    """Supabase's database linter rules that apply to what this project creates."""
    problems = []
    for row in db.query(
        """
        select n.nspname || '.' || p.proname as name
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = any(%s) and p.prokind = 'f'
          and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%%')
        """,
        (list(EXPOSED_SCHEMAS),),
    ):
        problems.append(f"function_search_path_mutable: {row['name']}")
    for row in db.query(
        """
        select n.nspname || '.' || p.proname as name
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = any(%s) and p.prosecdef
          and (has_function_privilege('anon', p.oid, 'execute')
               or has_function_privilege('authenticated', p.oid, 'execute'))
        """,
        (list(EXPOSED_SCHEMAS),),
    ):
        problems.append(f"security_definer_function_callable_by_end_users: {row['name']}")
    for row in db.query(
        """
        select n.nspname || '.' || c.relname as name
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind in ('r', 'p') and not c.relrowsecurity
        """,
        (list(EXPOSED_SCHEMAS),),
    ):
        problems.append(f"rls_disabled_in_public: {row['name']}")
    for row in db.query(
        """
        select n.nspname || '.' || c.relname as name
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm')
          and has_table_privilege('anon', c.oid, 'select, insert, update, delete')
        union all
        select n.nspname || '.' || p.proname
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = any(%s) and has_function_privilege('anon', p.oid, 'execute')
        """,
        (list(EXPOSED_SCHEMAS), list(EXPOSED_SCHEMAS)),
    ):
        problems.append(f"granted_to_anon: {row['name']}")
    for row in db.query(
        """
        select n.nspname || '.' || c.relname as name
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind = 'v'
          and not coalesce('security_invoker=true' = any(c.reloptions), false)
          and has_table_privilege('authenticated', c.oid, 'select')
        """,
        (list(EXPOSED_SCHEMAS),),
    ):
        problems.append(f"security_definer_view: {row['name']}")
    return problems


def test_catalog_lint_finds_nothing(db):
    assert catalog_lint(db) == []


def test_catalog_lint_catches_each_kind_of_problem(db):
    """The lint is only worth something if it fails on the mistakes it looks for."""
    with db.connect() as conn:
        conn.execute("create function public.lint_bait() returns int language sql security definer as 'select 1'")
        conn.execute("create table public.lint_bait_table (id int)")
        conn.execute("grant select on public.lint_bait_table to anon")
        conn.execute("create view analytics.lint_bait_view as select 1 as one")
        conn.execute("grant select on analytics.lint_bait_view to authenticated")
    try:
        found = "\n".join(catalog_lint(db))
        for rule in (
            "function_search_path_mutable: public.lint_bait",
            "security_definer_function_callable_by_end_users",
            "rls_disabled_in_public: public.lint_bait_table",
            "granted_to_anon: public.lint_bait_table",
            "security_definer_view: analytics.lint_bait_view",
        ):
            assert rule in found, found
    finally:
        with db.connect() as conn:
            conn.execute(
                "drop function public.lint_bait(); drop table public.lint_bait_table;"
                " drop view analytics.lint_bait_view"
            )


def test_the_build_warns_when_usage_logs_has_row_level_security_off_and_api_roles_exist(db):
    """The dashboard reads usage_logs with the caller's rights: without RLS there, every signed-in user
    could read every project's requests through the API. A warn-level dbt test says so on every build."""
    select = ("test", "--select", "warn_usage_logs_without_row_level_security")
    assert "PASS" in db.dbt(*select).stdout  # RLS is on (SUPABASE_LIKE)
    with db.connect() as conn:
        conn.execute("alter table public.usage_logs disable row level security")
    try:
        warned = db.dbt(*select)
        assert re.search(r"WARN 1 warn_usage_logs_without_row_level_security", warned.stdout), warned.stdout[-2000:]
    finally:
        with db.connect() as conn:
            conn.execute("alter table public.usage_logs enable row level security")
