{#
    The argument checks both RPCs (get_dashboard_stats, get_usage_breakdown) begin with, as PL/pgSQL
    statements: p_project_id, p_days (1..366) and p_time_zone (a name of the time zone database, not
    a POSIX offset such as '+05:30', whose sign Postgres inverts), each refused with a one-line
    error that says what to pass (SQLSTATE 22004 for NULL, 22023 otherwise). They end by setting
    v_today, the caller's date in p_time_zone.
#}
{% macro rpc_argument_checks(function_name) -%}
    if p_project_id is null then
        raise exception '{{ function_name }}: p_project_id is NULL; pass the project''s uuid'
            using errcode = '22004';
    end if;
    if p_days is null or p_days < 1 or p_days > 366 then
        raise exception '{{ function_name }}: p_days must be between 1 and 366, got %',
            coalesce(p_days::text, 'NULL')
            using errcode = '22023';
    end if;
    if p_time_zone is null then
        raise exception '{{ function_name }}: p_time_zone is NULL; pass a time zone name such as ''UTC'' or ''Europe/Berlin'''
            using errcode = '22004';
    end if;
    if p_time_zone !~ '^[A-Za-z][A-Za-z0-9_+/-]*$' then
        raise exception '{{ function_name }}: p_time_zone % is not a time zone name; pass one such as ''Asia/Kolkata''',
            quote_literal(p_time_zone)
            using errcode = '22023';
    end if;
    begin
        v_today := cast(now() at time zone p_time_zone as date);
    exception when invalid_parameter_value then
        raise exception '{{ function_name }}: p_time_zone % is not a time zone Postgres knows; pass an IANA name such as ''America/New_York''',
            quote_literal(p_time_zone)
            using errcode = '22023';
    end;
{%- endmacro %}
