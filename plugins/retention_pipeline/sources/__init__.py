"""Extracting from source systems: the landing folder, SQL databases, the helpdesk API.

Each source turns one data interval's worth of changes into a stream of CSV blocks that
goes through the same COPY, rule checks, quality gate and publish step as a landing
file (see :mod:`retention_pipeline.loading`). What differs per deployment is written in
the sources file (:mod:`retention_pipeline.sources.config`).
"""
