"""Apache Spark: the local session the `spark` dbt target uses, and moving rows in and out of it."""
