"""The Dagster code location: assets, partitions, schedules, jobs, checks and the dbt resource.

orchestration/definitions.py assembles them.
"""
