{# One day's forecast of `metric` from the trend line in `lines`: the line at `day_index` times the weekday `factor`, never below 0. #}
{% macro forecast_day(metric, lines, day_index, factor) -%}
    greatest(0, {{ lines }}.{{ metric }}_intercept + {{ lines }}.{{ metric }}_slope * ({{ day_index }})) * {{ factor }}
{%- endmacro %}
