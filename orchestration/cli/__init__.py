"""The `watchllm-analytics` command line: one module per tool a person runs by hand or from cron."""
