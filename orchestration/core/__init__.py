"""What both the command line and Dagster use: the database connection, running dbt, errors, reconcile and retention."""
