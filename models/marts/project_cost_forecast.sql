{#
    Cost forecast for the current UTC month, per project (docs/contract.md, section 11), from the
    daily totals of usage_aggregations_daily. Rebuilt whole on every run: one row per project,
    from at most the last 59 days of daily rows.

    The method (docs/contract.md, section 11): the last `forecast_history_days` (28) complete days,
    zero-filled from the project's first day; weekday factors (each weekday's mean over the overall
    mean) when at least 14 days are known; a least-squares trend through the deseasonalised days
    when at least 7 are, kept only when it is more than 2 standard errors from 0 (else their mean);
    each remaining day of the month is forecast as trend x its weekday factor, never below 0. With fewer days, the run rate. The 80% interval is +-1.2816 residual standard
    deviations x sqrt(days left). Savings, and what provider prompt caching saved, are forecast the
    same way.
#}
{{
    config(
        materialized='table',
        tags=['daily'],
        indexes=[{'columns': ['project_id', 'month'], 'unique': true}],
    )
}}

{%- set history_days = var('forecast_history_days', 28) | int -%}
{%- set as_of = var('forecast_as_of', none) -%}
{%- set metrics = {'cost': 'total_cost_usd', 'savings': 'total_savings_usd', 'prompt_cache_savings': 'prompt_cache_savings_usd'} -%}

with daily_usage as (

    select * from {{ ref('usage_aggregations_daily') }}

),

bounds as (

    select
        as_of_date,
        month_start,
        next_month_start,
        {{ days_between('month_start', 'next_month_start') }} as days_in_month,
        {{ days_between('month_start', 'as_of_date') }} + 1 as days_elapsed,
        {{ month_start(add_days('month_start', -1)) }} as previous_month_start
    from (
        select
            as_of_date,
            {{ month_start(add_days('as_of_date', 1)) }} as month_start,
            {{ month_start(add_days(month_start(add_days('as_of_date', 1)), 31)) }} as next_month_start
        from (
            select
                {% if as_of -%}
                {{ validated_date(as_of, 'forecast_as_of') }} as as_of_date
                {%- else -%}
                {{ add_days(utc_date(dbt.current_timestamp()), -1) }} as as_of_date
                {%- endif %}
        ) as today
    ) as months

),

recent_days as (

    select daily_usage.*
    from daily_usage
    cross join bounds
    where
        daily_usage.date > {{ add_days('bounds.as_of_date', -(history_days + 31)) }}
        and daily_usage.date <= bounds.as_of_date

),

projects as (

    -- traffic in the forecast month so far, or in the month before it
    select
        recent_days.project_id,
        min(recent_days.date) as first_day
    from recent_days
    cross join bounds
    group by recent_days.project_id, bounds.previous_month_start
    having max(recent_days.date) >= bounds.previous_month_start

),

month_to_date as (

    select
        recent_days.project_id,
        {%- for metric, column in metrics.items() %}
        coalesce(sum(recent_days.{{ column }}), 0) as month_to_date_{{ metric }}_usd{{ ',' if not loop.last }}
        {%- endfor %}
    from recent_days
    cross join bounds
    where recent_days.date >= bounds.month_start
    group by recent_days.project_id

),

day_offsets as (

    {%- for offset in range(history_days) %}
    select {{ offset }} as days_back{{ ' union all' if not loop.last }}
    {%- endfor %}

),

history as (

    -- the last `history_days` complete days of each project, zero-filled from its first day
    select
        projects.project_id,
        {{ history_days - 1 }} - day_offsets.days_back as day_index,
        {{ weekday(add_days('bounds.as_of_date', '-day_offsets.days_back')) }} as weekday,
        {%- for metric, column in metrics.items() %}
        coalesce(recent_days.{{ column }}, 0) as {{ metric }}{{ ',' if not loop.last }}
        {%- endfor %}
    from projects
    cross join bounds
    cross join day_offsets
    left join recent_days
        on
            projects.project_id = recent_days.project_id
            and recent_days.date = {{ add_days('bounds.as_of_date', '-day_offsets.days_back') }}
    where {{ add_days('bounds.as_of_date', '-day_offsets.days_back') }} >= projects.first_day

),

history_size as (

    select
        project_id,
        count(*) as known_days,
        {%- for metric in metrics %}
        avg({{ metric }}) as mean_{{ metric }}{{ ',' if not loop.last }}
        {%- endfor %}
    from history
    group by project_id

),

weekday_factors as (

    select
        history.project_id,
        history.weekday,
        {%- for metric in metrics %}
        case
            when history_size.known_days >= 14 and history_size.mean_{{ metric }} > 0
                then avg(history.{{ metric }}) / history_size.mean_{{ metric }}
            else 1
        end as {{ metric }}_factor{{ ',' if not loop.last }}
        {%- endfor %}
    from history
    inner join history_size on history.project_id = history_size.project_id
    group by
        history.project_id, history.weekday, history_size.known_days,
        {%- for metric in metrics %} history_size.mean_{{ metric }}{{ ',' if not loop.last }}{% endfor %}

),

deseasonalised as (

    select
        history.project_id,
        history.day_index,
        {%- for metric in metrics %}
        history.{{ metric }},
        weekday_factors.{{ metric }}_factor,
        -- a weekday whose factor is 0 (never any traffic) is forecast as 0 and left out of the trend
        case when weekday_factors.{{ metric }}_factor > 0
            then history.{{ metric }} / weekday_factors.{{ metric }}_factor
        end as {{ metric }}_level{{ ',' if not loop.last }}
        {%- endfor %}
    from history
    inner join weekday_factors
        on history.project_id = weekday_factors.project_id and history.weekday = weekday_factors.weekday

),

trends as (

    select
        deseasonalised.project_id,
        history_size.known_days,
        {%- for metric in metrics %}
        {%- set x = 'case when ' ~ metric ~ '_level is not null then day_index end' %}
        {%- set n = 'count(' ~ metric ~ '_level)' %}
        {%- set sxy = 'sum(' ~ x ~ ' * ' ~ metric ~ '_level)' %}
        {%- set sx = 'sum(' ~ x ~ ')' %}
        {%- set sy = 'sum(' ~ metric ~ '_level)' %}
        {%- set sxx = 'sum(' ~ x ~ ' * ' ~ x ~ ')' %}
        case
            when history_size.known_days >= 7 and {{ n }} * {{ sxx }} - {{ sx }} * {{ sx }} > 0
                then ({{ n }} * {{ sxy }} - {{ sx }} * {{ sy }}) / ({{ n }} * {{ sxx }} - {{ sx }} * {{ sx }})
            else 0
        end as {{ metric }}_slope,
        {{ sy }} as {{ metric }}_level_sum,
        {{ sx }} as {{ metric }}_index_sum,
        {{ sxx }} as {{ metric }}_index_squares_sum,
        {{ n }} as {{ metric }}_points{{ ',' if not loop.last }}
        {%- endfor %}
    from deseasonalised
    inner join history_size on deseasonalised.project_id = history_size.project_id
    group by deseasonalised.project_id, history_size.known_days

),

fitted_levels as (

    -- how far the deseasonalised days lie from their least-squares line: the slope's standard error
    select
        deseasonalised.project_id,
        {%- for metric in metrics %}
        sum(power(
            deseasonalised.{{ metric }}_level - (
                (trends.{{ metric }}_level_sum - trends.{{ metric }}_slope * trends.{{ metric }}_index_sum)
                / nullif(trends.{{ metric }}_points, 0)
                + trends.{{ metric }}_slope * deseasonalised.day_index
            ),
            2
        )) as {{ metric }}_residual_squares{{ ',' if not loop.last }}
        {%- endfor %}
    from deseasonalised
    inner join trends on deseasonalised.project_id = trends.project_id
    group by deseasonalised.project_id

),

significant_trends as (

    -- a slope is kept only when it is more than 2 standard errors from 0 (t > 2): on a flat month
    -- a noisy slope, extrapolated over the rest of the month, costs more than it explains
    select
        trends.project_id,
        trends.known_days,
        {%- for metric in metrics %}
        {%- set slope = 'cast(trends.' ~ metric ~ '_slope as ' ~ float_type() ~ ')' %}
        {%- set spread = 'cast(trends.' ~ metric ~ '_index_squares_sum as ' ~ float_type() ~ ') - cast(trends.'
            ~ metric ~ '_index_sum as ' ~ float_type() ~ ') * trends.' ~ metric ~ '_index_sum / trends.' ~ metric ~ '_points' %}
        case
            when trends.{{ metric }}_points > 2
                and {{ slope }} * {{ slope }} * ({{ spread }}) * (trends.{{ metric }}_points - 2)
                    > 4 * cast(fitted_levels.{{ metric }}_residual_squares as {{ float_type() }})
                then trends.{{ metric }}_slope
            else 0
        end as {{ metric }}_slope,
        trends.{{ metric }}_level_sum,
        trends.{{ metric }}_index_sum,
        trends.{{ metric }}_points{{ ',' if not loop.last }}
        {%- endfor %}
    from trends
    left join fitted_levels on trends.project_id = fitted_levels.project_id

),

lines as (

    select
        project_id,
        known_days,
        {%- for metric in metrics %}
        -- as money (decimal(38,18) on Spark): a quotient's own type there keeps no integer digits
        cast({{ metric }}_slope as {{ money_type() }}) as {{ metric }}_slope,
        cast(case when {{ metric }}_points > 0
            then ({{ metric }}_level_sum - {{ metric }}_slope * {{ metric }}_index_sum) / {{ metric }}_points
            else 0
        end as {{ money_type() }}) as {{ metric }}_intercept{{ ',' if not loop.last }}
        {%- endfor %}
    from significant_trends

),

residuals as (

    select
        deseasonalised.project_id,
        {%- for metric in metrics %}
        sqrt(
            sum(power(
                deseasonalised.{{ metric }} - {{ forecast_day(metric, 'lines', 'deseasonalised.day_index', 'deseasonalised.' ~ metric ~ '_factor') }},
                2
            )) / greatest(count(*) - 2, 1)
        ) as {{ metric }}_sigma{{ ',' if not loop.last }}
        {%- endfor %}
    from deseasonalised
    inner join lines on deseasonalised.project_id = lines.project_id
    group by deseasonalised.project_id

),

remaining_offsets as (

    {%- for offset in range(1, 32) %}
    select {{ offset }} as days_ahead{{ ' union all' if not loop.last }}
    {%- endfor %}

),

remaining as (

    -- every day of the month after as_of_date
    select
        lines.project_id,
        count(*) as days_left,
        {%- for metric in metrics %}
        sum({{ forecast_day(
            metric, 'lines', (history_days - 1) ~ ' + remaining_offsets.days_ahead', 'coalesce(weekday_factors.' ~ metric ~ '_factor, 1)'
        ) }}) as remaining_{{ metric }}{{ ',' if not loop.last }}
        {%- endfor %}
    from lines
    cross join bounds
    inner join remaining_offsets
        on {{ add_days('bounds.as_of_date', 'remaining_offsets.days_ahead') }} < bounds.next_month_start
    left join weekday_factors
        on
            lines.project_id = weekday_factors.project_id
            and weekday_factors.weekday = {{ weekday(add_days('bounds.as_of_date', 'remaining_offsets.days_ahead')) }}
    group by lines.project_id

),

forecasts as (

    select
        projects.project_id,
        bounds.month_start as month,
        bounds.as_of_date,
        bounds.days_elapsed,
        bounds.days_in_month,
        lines.known_days,
        coalesce(remaining.days_left, 0) as days_left,
        {%- for metric in metrics %}
        coalesce(month_to_date.month_to_date_{{ metric }}_usd, 0) as month_to_date_{{ metric }}_usd,
        coalesce(month_to_date.month_to_date_{{ metric }}_usd, 0)
            + round(coalesce(remaining.remaining_{{ metric }}, 0), 6) as forecast_{{ metric }}_usd,
        round(1.2816 * coalesce(residuals.{{ metric }}_sigma, 0) * sqrt(cast(coalesce(remaining.days_left, 0) as {{ money_type() }})), 6)
            as {{ metric }}_half_width{{ ',' if not loop.last }}
        {%- endfor %}
    from projects
    cross join bounds
    inner join lines on projects.project_id = lines.project_id
    left join month_to_date on projects.project_id = month_to_date.project_id
    left join residuals on projects.project_id = residuals.project_id
    left join remaining on projects.project_id = remaining.project_id

),

final as (

    select
        project_id,
        month,
        as_of_date,
        days_elapsed,
        days_in_month,
        month_to_date_cost_usd,
        forecast_cost_usd,
        greatest(month_to_date_cost_usd, forecast_cost_usd - cost_half_width) as forecast_low_usd,
        forecast_cost_usd + cost_half_width as forecast_high_usd,
        month_to_date_savings_usd,
        forecast_savings_usd,
        month_to_date_prompt_cache_savings_usd,
        forecast_prompt_cache_savings_usd,
        case
            when known_days >= 14 then 'weekday_trend'
            when known_days >= 7 then 'linear_trend'
            else 'run_rate'
        end as method
    from forecasts

)

select * from final
