"""The retention pipeline: ingest, quality gates, dbt marts, the weekly digest and call lists."""
