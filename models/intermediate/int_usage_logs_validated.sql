{#
    Every usage_logs row with its verdict (docs/contract.md, sections 3 and 16): `is_kept` says whether
    the aggregates keep it, and `rejection_reason` names every rule a rejected row breaks (NULL for
    a kept row). `is_kept` is plain predicates so the planner can estimate it and the text of the
    reason is only built for the rows the quarantine view reads. A label's length is measured as
    logged, so the dashboard can judge a request without normalising its names. The token-class
    rules of section 14 apply where usage_logs has class columns, and the label rules of section 16
    to the key, end user and tags where it has them.
#}

{%- set has_token_classes = usage_logs_have_token_classes() %}
{%- set dimensions = logged_dimensions() %}
{#- the cache classes' sum, in bigint: three counts of up to 2^31 each must not overflow #}
{%- set cache_tokens -%}
    cast(tokens_cache_read as bigint) + cast(tokens_cache_write as bigint) + cast(tokens_cache_write_1h as bigint)
{%- endset %}

with usage_logs as (

    select * from {{ ref('stg_proxy__usage_logs') }}

),

judged as (

    select
        *,
        (
            project_id is not null
            and created_at is not null
            and created_at <= {{ dbt.current_timestamp() }} + {{ minutes(var('future_tolerance_minutes')) }}
            and tokens_input >= 0
            and tokens_output >= 0
            and (recorded_cost_usd is null or recorded_cost_usd >= 0)
            and (recorded_potential_cost_usd is null or recorded_potential_cost_usd >= 0)
            and coalesce(char_length(logged_provider), 0) <= {{ max_label_length() }}
            and coalesce(char_length(logged_model), 0) <= {{ max_label_length() }}
            {%- if has_token_classes %}
            {%- for column in token_class_columns() %}
            and {{ column }} >= 0
            {%- endfor %}
            and {{ cache_tokens }} <= tokens_input
            and tokens_reasoning <= tokens_output
            {%- endif %}
            {%- if 'api_key' in dimensions %}
            and coalesce(char_length(api_key_id), 0) <= {{ max_label_length() }}
            {%- endif %}
            {%- if 'end_user' in dimensions %}
            and coalesce(char_length(end_user), 0) <= {{ max_label_length() }}
            {%- endif %}
            {%- if 'tag' in dimensions %}
            and tags_are_an_array
            and {{ longest_tag_length('tags') }} <= {{ max_label_length() }}
            and {{ tag_count('tags') }} <= {{ max_tags_per_request() }}
            {%- endif %}
        ) as is_kept,
        nullif(concat_ws('; ',
            case when project_id is null then 'project_id is null' end,
            case when created_at is null then 'created_at is null' end,
            case
                when created_at > {{ dbt.current_timestamp() }} + {{ minutes(var('future_tolerance_minutes')) }}
                    then 'created_at is more than {{ var("future_tolerance_minutes") | int }} minutes in the future'
            end,
            case when tokens_input < 0 then 'tokens_input is negative' end,
            case when tokens_output < 0 then 'tokens_output is negative' end,
            case when recorded_cost_usd < 0 then 'cost_usd is negative' end,
            case when recorded_potential_cost_usd < 0 then 'potential_cost_usd is negative' end,
            case when char_length(logged_provider) > {{ max_label_length() }}
                then 'provider is longer than {{ max_label_length() }} characters' end,
            case when char_length(logged_model) > {{ max_label_length() }}
                then 'model is longer than {{ max_label_length() }} characters' end
            {%- if has_token_classes %},
            {%- for column in token_class_columns() %}
            case when {{ column }} < 0 then '{{ column }} is negative' end,
            {%- endfor %}
            case when {{ cache_tokens }} > tokens_input
                then 'tokens_cache_read + tokens_cache_write + tokens_cache_write_1h exceed tokens_input' end,
            case when tokens_reasoning > tokens_output then 'tokens_reasoning exceeds tokens_output' end
            {%- endif %}
            {%- if 'api_key' in dimensions %},
            case when char_length(api_key_id) > {{ max_label_length() }}
                then 'api_key_id is longer than {{ max_label_length() }} characters' end
            {%- endif %}
            {%- if 'end_user' in dimensions %},
            case when char_length(end_user) > {{ max_label_length() }}
                then 'end_user is longer than {{ max_label_length() }} characters' end
            {%- endif %}
            {%- if 'tag' in dimensions %},
            case when not tags_are_an_array then 'tags is not an array' end,
            case when {{ longest_tag_length('tags') }} > {{ max_label_length() }}
                then 'a tag is longer than {{ max_label_length() }} characters' end,
            case when {{ tag_count('tags') }} > {{ max_tags_per_request() }}
                then 'tags has more than {{ max_tags_per_request() }} distinct values' end
            {%- endif %}
        ), '') as rejection_reason

    from usage_logs

)

select * from judged
