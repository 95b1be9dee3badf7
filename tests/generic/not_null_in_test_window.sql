{# `column_name` is never NULL over the rows of this run's test window (`time_column`: a timestamptz); all of history in the deep check. #}
{% test not_null_in_test_window(model, column_name, time_column) %}

select {{ column_name }}
from {{ model }}
where
    {{ column_name }} is null
    and {{ in_test_window(time_column, source('proxy', 'usage_logs')) }}

{% endtest %}
