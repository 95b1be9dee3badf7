"""`generate`: synthetic usage_logs shaped like real proxy traffic, generated inside the server.

Every random draw is a hash of (seed, row number, draw number), so a given seed, end time and
size always produce the same rows, whatever the server's parallelism. Ids derive from the same
inputs and inserts skip existing ids, so re-running the same command adds nothing.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from orchestration import settings
from orchestration.cli.pricing import read_seed, standard_rows
from orchestration.core import database
from orchestration.core.database import Connection
from orchestration.core.errors import UserError

# The model mix: (provider, model, relative weight). Only models the pricing seed prices are used
# for the main traffic; UNPRICED_MODELS stand for the long tail the seed does not know.
MODEL_MIX: tuple[tuple[str, str, int], ...] = (
    ("openai", "gpt-4o-mini", 30),
    ("openai", "gpt-4o", 14),
    ("openai", "gpt-4.1-mini", 8),
    ("openai", "gpt-5", 5),
    ("openai", "gpt-4o-2024-08-06", 3),
    ("anthropic", "claude-3-5-sonnet-20241022", 8),
    ("anthropic", "claude-sonnet-4-20250514", 6),
    ("google", "gemini-2.0-flash", 7),
    ("google", "gemini-1.5-pro", 3),
    ("groq", "llama3-70b-8192", 5),
    ("mistral", "mistral-large-latest", 4),
    ("deepseek", "deepseek-chat", 6),
    ("openai", "ft:gpt-4o-mini-2024-07-18:acme::a1b2c3", 1),
)
UNPRICED_MODELS: tuple[tuple[str, str], ...] = (
    ("openai", "my-private-finetune"),
    ("together", "llama-3-8b-instruct"),
)

CHUNK_ROWS = 250_000

DRAWS = (
    "u_project",
    "u_day",
    "u_time",
    "u_model",
    "u_tin",
    "u_tout",
    "u_cached",
    "u_latency",
    "u_messy",
    "u_kind",
    "u_oddity",
    "u_unpriced",
    "u_boundary",
    "u_spare",
    "u_class",  # the token classes (--token-classes): drawn last, so the other columns stay as they were
    "u_tier",
    "u_key",  # who spent it (--attribution): drawn after the token classes, for the same reason
    "u_user",
    "u_tags",
    "u_status",
)
# A uniform draw in [0, 1) from (seed, row, draw number): a hash, not a random() call, so the
# result does not depend on evaluation order or parallel workers.
UNIFORM = "((hashint8extended(i, %(seed)s * 64 + {k}) & 9223372036854775807)::float8 / 9223372036854775808.0)"


@dataclass(frozen=True)
class GenerateOptions:
    rows: int
    days: float
    projects: int
    seed: int
    messy: bool
    end: dt.datetime  # exclusive, UTC
    token_classes: bool = False  # fill the optional columns of contract section 14
    attribution: bool = False  # fill the optional columns of contract section 15
    keys: int = 3  # API keys in all
    end_users: int = 500  # end users in all
    tags: int = 20  # distinct tags in all
    error_rate: float = 0.05  # the share of requests answered with an HTTP error


def default_end() -> dt.datetime:
    """Now, rounded down to the minute (UTC)."""
    return dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


def validate(options: GenerateOptions) -> None:
    if options.rows < 0:
        raise UserError(f"--rows must be 0 or more, got {options.rows}")
    if not options.days > 0:
        raise UserError(f"--days must be more than 0, got {options.days}")
    if options.projects < 1:
        raise UserError(f"--projects must be at least 1, got {options.projects}")
    for name, value in (("--keys", options.keys), ("--end-users", options.end_users), ("--tags", options.tags)):
        if value < 1:
            raise UserError(f"{name} must be at least 1, got {value}")
    if not 0 <= options.error_rate <= 1:
        raise UserError(f"--error-rate must be between 0 and 1, got {options.error_rate}")


def model_catalogue(seed_path: Path, start: dt.date) -> list[tuple[str, str, int]]:
    """MODEL_MIX restricted to models the seed prices on `start` (so the main traffic is priced)."""
    day = start.isoformat()
    current = [r for r in read_seed(seed_path) if r["valid_from"] <= day and (not r["valid_to"] or r["valid_to"] > day)]

    def priced(provider: str, model: str) -> bool:
        return any(
            r["provider"] == provider
            and (r["model"] == model or (r["model_pattern"] and re.search(r["model_pattern"], model, re.I)))
            for r in current
        )

    catalogue = [(p, m, w) for p, m, w in MODEL_MIX if priced(p, m)]
    if not catalogue:
        raise UserError(f"the pricing seed {seed_path} prices none of the generator's models on {start}")
    return catalogue


CREATE_TABLE = """
create table if not exists {table} (
    id uuid not null,
    project_id uuid,
    created_at timestamptz,
    provider text,
    model text,
    tokens_input integer,
    tokens_output integer,
    cost_usd numeric,
    potential_cost_usd numeric,
    cached boolean,
    latency_ms integer,
    request_tags text  -- an extra column, as the proxy's real table has: the models ignore it
)
"""

# One chunk of rows [lo, hi]. %(name)s are bound parameters; {table} is a quoted identifier.
INSERT_CHUNK = """
with u as materialized (
    select
        i,
{draws}
    from generate_series(%(lo)s::bigint, %(hi)s::bigint) as i
),
shaped as materialized (
    select
        u.*,
        floor(%(projects)s * power(u_project, 3))::int as project_index,
        case
            when %(days)s >= 1 then
                %(start)s::timestamptz
                + floor(u_day * floor(%(days)s)) * interval '1 day'
                + (u_time + 0.1 * sin(2 * pi() * u_time)) * interval '1 day'
            else %(start)s::timestamptz + u_day * (%(end)s::timestamptz - %(start)s::timestamptz)
        end as raw_created_at
    from u
),
picked as materialized (
    select
        s.*,
        md5('watchllm-project:' || s.project_index)::uuid as project_id,
        case when u_boundary < 0.005 then date_trunc('hour', raw_created_at) else raw_created_at end
            as created_at,
        ((case when u_boundary < 0.005 then date_trunc('hour', raw_created_at) else raw_created_at end)
            at time zone 'UTC')::date as created_date,
        coalesce(unpriced.provider, mix.provider) as provider,
        coalesce(unpriced.model, mix.model) as model,
        (50 + floor(3000 * power(u_tin, 2)))::int as tokens_input,
        (20 + floor(1200 * power(u_tout, 2)))::int as tokens_output,
        u_cached < 0.25 + 0.2 * ((s.project_index * 0.6180339887) - floor(s.project_index * 0.6180339887))
            as cached
    from shaped as s
    join gen_model_mix as mix on mix.bucket = floor(s.u_model * 1000)::int
    left join gen_unpriced as unpriced
        on s.u_unpriced < 0.01 and floor(s.u_unpriced * 100 * %(unpriced_count)s)::int = unpriced.ord
),
priced as (
    select
        p.*,
        (p.tokens_input * coalesce(exact.input_usd_per_1m, pattern.input_usd_per_1m)
            + p.tokens_output * coalesce(exact.output_usd_per_1m, pattern.output_usd_per_1m))
            * 0.000001 as list_price
    from picked as p
    left join gen_prices as exact
        on exact.provider = p.provider
        and exact.model = p.model
        and p.created_date >= exact.valid_from
        and (p.created_date < exact.valid_to or exact.valid_to is null)
    left join gen_prices as pattern
        on p.model like 'ft:%%'
        and pattern.provider = p.provider
        and pattern.model_pattern is not null
        and p.model ~* pattern.model_pattern
        and p.created_date >= pattern.valid_from
        and (p.created_date < pattern.valid_to or pattern.valid_to is null)
),
clean as (
    select
        md5('watchllm-row:' || %(seed)s || ':' || %(end)s || ':' || i)::uuid as id,
        project_id,
        created_at,
        provider,
        model,
        tokens_input,
        tokens_output,
        case
            when cached then 0
            when u_spare < 0.02 then null  -- cost not recorded: the models price it from the seed
            else coalesce(list_price, round((u_spare * 0.02)::numeric, 6))
        end as cost_usd,
        case
            -- rows logged before migration 004 have no potential cost (0 or NULL)
            when created_at < %(migration_at)s::timestamptz then
                case when u_spare < 0.5 then 0 end
            else coalesce(list_price, case when not cached then round((u_spare * 0.02)::numeric, 6) end)
        end as potential_cost_usd,
        cached,
        case
            when cached then 2 + floor(40 * u_latency)::int
            else 250 + floor(2500 * power(u_latency, 2))::int + tokens_output / 2
        end as latency_ms,
        u_messy,
        u_kind,
        u_oddity,
        u_class,
        u_tier,
        u_key,
        u_user,
        u_tags,
        u_status,
        i
    from priced
)
insert into {table} (
    id, project_id, created_at, provider, model, tokens_input, tokens_output,
    cost_usd, potential_cost_usd, cached, latency_ms, request_tags{class_columns}{attribution_columns}
)
select
    id,
    case when messy_kind in (0, 13) then null else project_id end,
    case
        when messy_kind = 1 then null
        when messy_kind = 2 then %(end)s::timestamptz + interval '50 years' + u_oddity * interval '3 days'
        else created_at
    end,
    case
        when messy_kind = 9 then (array[null, '', '   '])[1 + floor(u_oddity * 3)::int]
        when messy_kind = 10 then '  ' || upper(provider) || E'\t'
        else provider
    end,
    case
        when messy_kind = 9 then (array[null, '', E' \t'])[1 + floor(u_oddity * 3)::int]
        when messy_kind = 10 then ' ' || upper(model) || ' '
        else model
    end,
    case when messy_kind in (3, 13) then -1 - floor(u_oddity * 100)::int
         when messy_kind = 7 then null else tokens_input end,
    case when messy_kind = 4 then -1 - floor(u_oddity * 100)::int
         when messy_kind = 7 and u_oddity < 0.5 then null else tokens_output end,
    case when messy_kind = 5 then -round((u_oddity * 0.01)::numeric, 6) else cost_usd end,
    case when messy_kind = 6 then -round((u_oddity * 0.01)::numeric, 6) else potential_cost_usd end,
    case when messy_kind = 8 then null else cached end,
    case when messy_kind = 11 then -1 - floor(u_oddity * 50)::int
         when messy_kind = 12 then null else latency_ms end,
    case when i %% 7 = 0 then 'tag:' || (i %% 13) end{class_values}{attribution_values}
from (
    select
        clean.*,
        case when %(messy)s and u_messy < 0.04 then floor(u_kind * 14)::int end as messy_kind
    from clean
) as rows_with_kind
{on_conflict}
"""


INSERT_SQL = INSERT_CHUNK.replace(
    "{draws}", ",\n".join(f"        {UNIFORM.format(k=k)} as {name}" for k, name in enumerate(DRAWS, 1))
)

# The optional columns of contract section 14 (--token-classes): about 40% of requests read part of
# their prompt from the provider's cache, 10% write to it (a fifth of those at the 1-hour rate), 15%
# spend output on reasoning, and 11% name a service tier (one in eleven of those spelled loosely).
CLASS_COLUMNS = {
    "tokens_cache_read": "case when u_class < 0.4 then floor(tokens_input * (0.3 + 1.5 * u_class))::int"
    " when u_class < 0.45 then null else 0 end",
    "tokens_cache_write": "case when u_class >= 0.45 and u_class < 0.53 then floor(tokens_input * 0.4)::int end",
    "tokens_cache_write_1h": "case when u_class >= 0.53 and u_class < 0.55 then floor(tokens_input * 0.5)::int end",
    "tokens_reasoning": "case when u_tier < 0.15 then floor(tokens_output * 0.6)::int else 0 end",
    "service_tier": "case when u_tier >= 0.97 then 'priority' when u_tier >= 0.92 then 'batch'"
    " when u_tier >= 0.90 then 'flex' when u_tier >= 0.89 then ' Batch ' end",
}
CLASS_COLUMN_TYPES = {column: "text" if column == "service_tier" else "integer" for column in CLASS_COLUMNS}

# The optional columns of contract section 15 (--attribution): keys drawn skewed from --keys (2%
# without one), end users drawn skewed from --end-users (3% without one), 0 to 3
# tags from --tags (a quarter untagged, some repeated on one request, some padded or empty), and
# --error-rate of requests answered with a 4xx or 5xx (1% without a status). With --messy a few
# labels are hostile: control characters, markup, and labels too long to keep.
ATTRIBUTION_COLUMNS = {
    "api_key_id": "case when u_key < 0.02 then null"
    " when %(messy)s and u_key < 0.021 then E'  \\t '"
    " when %(messy)s and u_key < 0.022 then repeat('k', 300)"
    " else 'key-' || floor(power(u_key, 1.5) * %(keys)s)::int end",
    "end_user": "case when u_user < 0.03 then null"
    " when %(messy)s and u_user < 0.031 then E'<!channel> user\\nline'"
    " else 'user-' || floor(power(u_user, 2) * %(end_users)s)::int end",
    "tags": "case when u_tags < 0.25 then null"
    " when u_tags < 0.27 then array[]::text[]"
    " else (select array_agg(case"
    " when %(messy)s and u_tags < 0.2705 and n = 1 then repeat('t', 300)"
    " when u_tags < 0.30 and n = 2 then ''"
    " when u_tags < 0.33 and n = 2 then 'feature-' || (floor(u_tags * 7919)::int %% %(tags)s)"
    " else 'feature-' || ((floor(u_tags * 7919)::int + n * (1 + floor(u_tags * 104729)::int %% 7)) %% %(tags)s) end"
    " order by n) from generate_series(1, 1 + floor(((u_tags - 0.27) / 0.73) * 3)::int) as n) end",
    "status_code": "case when u_status < 0.01 then null"
    " when u_status < 0.01 + %(error_rate)s then (array[400, 401, 429, 500, 502, 503])[1 + floor(u_key * 6)::int]"
    " else 200 end",
}
ATTRIBUTION_COLUMN_TYPES = {"api_key_id": "text", "end_user": "text", "tags": "text[]", "status_code": "integer"}


def generate(
    conn: Connection,
    options: GenerateOptions,
    seed_path: Path = settings.PRICING_SEED,
    progress: Callable[[str], None] | None = None,
    workers: int = 2,
) -> int:
    """Insert the rows into the source table (created if missing); returns rows inserted.

    Chunks are inserted by `workers` connections at once (the machine's cores), each chunk
    in its own transaction.
    """
    validate(options)
    table = sql.Identifier(settings.source_schema(), "usage_logs")
    start = options.end - dt.timedelta(days=options.days)
    catalogue = model_catalogue(seed_path, start.date())

    with database.cursor(conn) as cur:
        cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(settings.source_schema())))
        existed = cur.execute(
            "select to_regclass(%s) is not null", (f'"{settings.source_schema()}".usage_logs',)
        ).fetchone()[0]
        cur.execute(sql.SQL(CREATE_TABLE).format(table=table))
        optional = {
            **(CLASS_COLUMN_TYPES if options.token_classes else {}),
            **(ATTRIBUTION_COLUMN_TYPES if options.attribution else {}),
        }
        if optional:
            for column, column_type in optional.items():
                cur.execute(
                    sql.SQL("alter table {} add column if not exists {} {}").format(
                        table, sql.Identifier(column), sql.SQL(column_type)
                    )
                )
        if existed and not _id_is_unique(cur):
            cur.execute(sql.SQL("alter table {} add primary key (id)").format(table))  # an interrupted first load
    # A new table is loaded first and keyed after (much faster); into an existing one, rows
    # whose id is already there are skipped, so the same command twice adds nothing.
    insert = sql.SQL(INSERT_SQL).format(
        table=table,
        on_conflict=sql.SQL("on conflict (id) do nothing" if existed else ""),
        class_columns=sql.SQL("".join(f", {c}" for c in CLASS_COLUMNS) if options.token_classes else ""),
        class_values=sql.SQL("".join(f",\n    {e}" for e in CLASS_COLUMNS.values()) if options.token_classes else ""),
        attribution_columns=sql.SQL("".join(f", {c}" for c in ATTRIBUTION_COLUMNS) if options.attribution else ""),
        attribution_values=sql.SQL(
            "".join(f",\n    {e}" for e in ATTRIBUTION_COLUMNS.values()) if options.attribution else ""
        ),
    )
    params = {
        "seed": options.seed,
        "projects": options.projects,
        "days": options.days,
        "start": start,
        "end": options.end,
        # rows in the first quarter of the range predate migration 004 (no potential cost)
        "migration_at": start + (options.end - start) / 4,
        "messy": options.messy,
        "unpriced_count": len(UNPRICED_MODELS),
        "keys": options.keys,
        "end_users": options.end_users,
        "tags": options.tags,
        "error_rate": options.error_rate,
    }
    chunks = [(lo, min(lo + CHUNK_ROWS - 1, options.rows)) for lo in range(1, options.rows + 1, CHUNK_ROWS)]
    done = {"rows": 0, "inserted": 0}
    lock = threading.Lock()
    started = time.monotonic()

    def worker(my_chunks: list[tuple[int, int]]) -> None:
        with database.cursor(conn) as cur:
            _load_lookup_tables(cur, catalogue, seed_path)
            for lo, hi in my_chunks:
                cur.execute(insert, {**params, "lo": lo, "hi": hi})
                with lock:
                    done["rows"] += hi - lo + 1
                    done["inserted"] += cur.rowcount
                    if progress:
                        rate = done["rows"] / max(time.monotonic() - started, 1e-6)
                        progress(f"generated {done['rows']:,}/{options.rows:,} rows ({rate:,.0f} rows/s)")

    shares = [chunks[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(worker, share) for share in shares if share]:
            future.result()

    with database.cursor(conn) as cur:
        if not existed:
            cur.execute(sql.SQL("alter table {} add primary key (id)").format(table))
            cur.execute(
                sql.SQL("create index if not exists usage_logs_created_at_idx on {} (created_at)").format(table)
            )
            cur.execute(
                sql.SQL(
                    "create index if not exists usage_logs_project_id_created_at_idx on {} (project_id, created_at)"
                ).format(table)
            )
        cur.execute(sql.SQL("analyze {}").format(table))
    return done["inserted"]


def _id_is_unique(cur) -> bool:
    return cur.execute(
        """
        select exists (
            select 1 from pg_constraint as c
            join pg_attribute as a on a.attrelid = c.conrelid and a.attnum = any (c.conkey)
            where c.conrelid = to_regclass(%s) and c.contype in ('p', 'u')
              and a.attname = 'id' and cardinality(c.conkey) = 1
        )
        """,
        (f'"{settings.source_schema()}".usage_logs',),
    ).fetchone()[0]


def _load_lookup_tables(cur, catalogue: list[tuple[str, str, int]], seed_path: Path) -> None:
    cur.execute("set work_mem = '128MB'")
    cur.execute(
        "create temporary table if not exists gen_model_mix (bucket int primary key, provider text, model text)"
    )
    cur.execute("create temporary table if not exists gen_unpriced (ord int, provider text, model text)")
    cur.execute(
        "create temporary table if not exists gen_prices (provider text, model text, model_pattern text,"
        " input_usd_per_1m numeric, output_usd_per_1m numeric, valid_from date, valid_to date)"
    )
    cur.execute("truncate gen_model_mix, gen_unpriced, gen_prices")
    # 1000 buckets, each owned by one model in proportion to its weight: an equi-join picks the model.
    total = sum(w for _, _, w in catalogue)
    owners = [(p, m) for p, m, w in catalogue for _ in range(round(1000 * w / total))]
    owners = (owners + [catalogue[0][:2]] * 1000)[:1000]
    with cur.copy("copy gen_model_mix from stdin") as copy:
        for bucket, (provider, model) in enumerate(owners):
            copy.write_row((bucket, provider, model))
    for i, (provider, model) in enumerate(UNPRICED_MODELS):
        cur.execute("insert into gen_unpriced values (%s, %s, %s)", (i, provider, model))
    with cur.copy("copy gen_prices from stdin") as copy:
        for row in standard_rows(read_seed(seed_path)):
            copy.write_row(
                (
                    row["provider"],
                    row["model"],
                    row["model_pattern"] or None,
                    row["input_usd_per_1m"],
                    row["output_usd_per_1m"],
                    row["valid_from"],
                    row["valid_to"] or None,
                )
            )


def print_progress(line: str) -> None:
    sys.stderr.write("\r" + line)
    sys.stderr.flush()
