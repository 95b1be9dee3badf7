{# Warning: models with unpriced requests in the recent window: add them to seeds/model_pricing.csv. #}
{{ config(severity='warn') }}

select provider, model, sum(unpriced_requests) as unpriced_requests
from {{ ref('usage_by_model_daily') }}
where date >= (select max(date) from {{ ref('usage_by_model_daily') }}) - {{ var('quality_window_days') | int }}
group by provider, model
having sum(unpriced_requests) > 0
