{#
    The primary key of a table: no two rows share `columns` and none of them is NULL. With
    `time_column` only the rows of this run's test window are read (`time_grain` is its kind: 'hour'
    for a timestamptz, 'day' or 'month' for a date), so a scheduled build checks the buckets it
    rebuilt; the deep check reads all of history (macros/quality/test_window.sql).
#}
{% test grain_is_unique(model, columns, time_column=none, time_grain='hour') %}

with window_rows as (

    select {{ columns | join(', ') }}
    from {{ model }}
    {%- if time_column %}
    where {{ in_test_window(time_column, source('proxy', 'usage_logs'), grain=time_grain) }}
    {%- endif %}

)

select
    {{ columns | join(', ') }},
    count(*) as rows_with_this_key
from window_rows
group by {{ columns | join(', ') }}
having count(*) > 1 or {% for column in columns %}{{ column }} is null{{ ' or ' if not loop.last }}{% endfor %}

{% endtest %}
