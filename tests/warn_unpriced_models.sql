{# Warning: models with unpriced requests on the days of the test window: add them to seeds/model_pricing.csv. #}
{{ config(severity='warn', tags=['deep_check'], meta={'dagster': {'ref': {'name': 'usage_by_model_daily'}}}) }}

select provider, model, sum(unpriced_requests) as unpriced_requests
from {{ ref('usage_by_model_daily') }}
where {{ in_test_window('date', source('proxy', 'usage_logs'), grain='day') }}
group by provider, model
having sum(unpriced_requests) > 0
