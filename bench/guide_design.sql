-- The original design guide's aggregation (summarised in docs/contract.md, "Where this came from"), written
-- faithfully from its description, as the baseline of bench scenario 5. Not part of the product.
-- {schema}: where these objects live; {logs}: the usage_logs table they read.

create schema if not exists {schema};

create table if not exists {schema}.usage_aggregations_hourly (
    id bigserial primary key,
    project_id uuid not null,
    hour_start timestamptz not null,
    total_requests integer not null default 0,
    cached_requests integer not null default 0,
    cache_hit_rate numeric(5, 2),
    tokens_input bigint not null default 0,
    tokens_output bigint not null default 0,
    total_tokens bigint not null default 0,
    total_cost_usd numeric not null default 0,
    total_potential_cost_usd numeric not null default 0,
    total_savings_usd numeric not null default 0,
    avg_latency_ms numeric(10, 2),
    requests_by_provider jsonb not null default '{{}}',
    requests_by_model jsonb not null default '{{}}',
    updated_at timestamptz not null default now(),
    unique (project_id, hour_start)
);

-- "Aggregates all usage logs for a specific hour into the hourly aggregations table."
create or replace function {schema}.aggregate_usage_hourly(p_project_id uuid, p_hour_start timestamptz)
returns void
language plpgsql
as $$
declare
    v_hour_end timestamptz := p_hour_start + interval '1 hour';
begin
    insert into {schema}.usage_aggregations_hourly as agg (
        project_id, hour_start, total_requests, cached_requests, cache_hit_rate, tokens_input,
        tokens_output, total_tokens, total_cost_usd, total_potential_cost_usd, total_savings_usd,
        avg_latency_ms, requests_by_provider, requests_by_model
    )
    select
        p_project_id,
        p_hour_start,
        count(*),
        count(*) filter (where cached),
        case when count(*) > 0 then round(100.0 * count(*) filter (where cached) / count(*), 2) else 0 end,
        coalesce(sum(tokens_input), 0),
        coalesce(sum(tokens_output), 0),
        coalesce(sum(tokens_input + tokens_output), 0),
        coalesce(sum(cost_usd), 0),
        coalesce(sum(potential_cost_usd), 0),
        coalesce(sum(potential_cost_usd - cost_usd), 0),
        round(avg(latency_ms), 2),
        coalesce((
            select jsonb_object_agg(provider, requests)
            from (
                select provider, count(*) as requests from {logs}
                where project_id = p_project_id and created_at >= p_hour_start and created_at < v_hour_end
                group by provider
            ) as by_provider
        ), '{{}}'),
        coalesce((
            select jsonb_object_agg(model, requests)
            from (
                select model, count(*) as requests from {logs}
                where project_id = p_project_id and created_at >= p_hour_start and created_at < v_hour_end
                group by model
            ) as by_model
        ), '{{}}')
    from {logs}
    where project_id = p_project_id and created_at >= p_hour_start and created_at < v_hour_end
    on conflict (project_id, hour_start) do update set
        total_requests = excluded.total_requests,
        cached_requests = excluded.cached_requests,
        cache_hit_rate = excluded.cache_hit_rate,
        tokens_input = excluded.tokens_input,
        tokens_output = excluded.tokens_output,
        total_tokens = excluded.total_tokens,
        total_cost_usd = excluded.total_cost_usd,
        total_potential_cost_usd = excluded.total_potential_cost_usd,
        total_savings_usd = excluded.total_savings_usd,
        avg_latency_ms = excluded.avg_latency_ms,
        requests_by_provider = excluded.requests_by_provider,
        requests_by_model = excluded.requests_by_model,
        updated_at = now();
end
$$;

-- Option A of the guide: re-aggregate the row's hour after every insert.
create or replace function {schema}.trigger_update_aggregations()
returns trigger
language plpgsql
as $$
begin
    perform {schema}.aggregate_usage_hourly(new.project_id, date_trunc('hour', new.created_at));
    return new;
end
$$;
