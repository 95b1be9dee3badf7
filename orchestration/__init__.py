"""watchllm-analytics: the Python runner around the dbt project (CLI, embedded Postgres, data tools)."""
